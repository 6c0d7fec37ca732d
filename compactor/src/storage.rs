//! Opens the object store a URL names: a local directory (`file:///path` or a plain
//! path) or `memory://` (tests).

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use std::path::Path;
use std::sync::Arc;

/// Why a store cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("cannot use {path} as the data directory: {source}\n  hint: pass --data with a directory you can write to")]
    Directory { path: String, source: std::io::Error },
    #[error("storage url {0:?} is not supported: use file:///path, a plain path or memory://")]
    Unsupported(String),
    #[error("storage url {url:?} is not valid: {message}")]
    InvalidUrl { url: String, message: String },
}

/// An opened store and a description for logs.
#[derive(Clone, Debug)]
pub struct Storage {
    pub store: Arc<dyn ObjectStore>,
    pub description: String,
}

/// Opens the store for `location`: `file:///path`, `memory://`, or a plain path.
pub fn open(location: &str) -> Result<Storage, StorageError> {
    if location == "memory://" || location == "memory:///" {
        return Ok(Storage { store: Arc::new(InMemory::new()), description: "memory".into() });
    }
    let path = if location.starts_with("file://") {
        let url = url::Url::parse(location)
            .map_err(|e| StorageError::InvalidUrl { url: location.to_owned(), message: e.to_string() })?;
        url.to_file_path().map_err(|()| StorageError::InvalidUrl {
            url: location.to_owned(),
            message: "not an absolute path".into(),
        })?
    } else if location.contains("://") {
        return Err(StorageError::Unsupported(location.to_owned()));
    } else {
        Path::new(location).to_owned()
    };
    let directory = |source| StorageError::Directory { path: path.display().to_string(), source };
    std::fs::create_dir_all(&path).map_err(directory)?;
    let path = path.canonicalize().map_err(directory)?;
    let probe = path.join(".sluice-write-check");
    std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)).map_err(directory)?;
    let store = LocalFileSystem::new_with_prefix(&path).map_err(|e| directory(std::io::Error::other(e)))?;
    Ok(Storage { store: Arc::new(store), description: format!("file://{}", path.display()) })
}
