//! A local directory as an object store that keeps what it acknowledged.
//!
//! `object_store`'s `LocalFileSystem` writes a staging file (`{name}#{n}`) and renames it
//! into place, without `fsync`: after a power loss an acknowledged raw batch, a Parquet
//! file or a Delta commit could be empty or missing. [`Durable`] wraps it: once a write
//! (a put, a finished multipart upload, a copy, a rename) returns, the file's data and
//! every directory entry from it up to the store's root have been synced.
//!
//! A process killed mid-write leaves its staging file behind, which no listing shows;
//! [`remove_stale_staging`] deletes those older than an hour.

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Makes a file or directory durable (`fsync`).
pub type Syncer = Arc<dyn Fn(&std::path::Path) -> std::io::Result<()> + Send + Sync>;

/// `fsync` of a file or a directory.
pub fn fsync(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// A local directory whose writes are durable when they return.
pub struct Durable {
    inner: LocalFileSystem,
    root: PathBuf,
    sync: Syncer,
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable").field("root", &self.root).finish_non_exhaustive()
    }
}

impl fmt::Display for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Durable({})", self.root.display())
    }
}

impl Durable {
    /// The directory `root` (which exists), synced with `sync`.
    pub fn new(root: PathBuf, sync: Syncer) -> Result<Self> {
        Ok(Self { inner: LocalFileSystem::new_with_prefix(&root)?, root, sync })
    }

    /// Syncs the object at `location` and the directories from it up to the root.
    async fn settle(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        let (root, sync) = (self.root.clone(), self.sync.clone());
        let synced = tokio::task::spawn_blocking(move || settle(&file, &root, &sync)).await;
        match synced {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(object_store::Error::Generic { store: "Durable", source: Box::new(source) }),
            Err(join) => Err(object_store::Error::Generic { store: "Durable", source: Box::new(join) }),
        }
    }
}

fn settle(file: &std::path::Path, root: &std::path::Path, sync: &Syncer) -> std::io::Result<()> {
    sync(file)?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        sync(d)?;
        if d == root || !d.starts_with(root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for Durable {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.settle(location).await?;
        Ok(result)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        let file = self.inner.path_to_filesystem(location)?;
        Ok(Box::new(DurableUpload { inner, file, root: self.root.clone(), sync: self.sync.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.settle(to).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.settle(to).await
    }
}

/// A multipart upload that syncs its file when it completes.
struct DurableUpload {
    inner: Box<dyn MultipartUpload>,
    file: PathBuf,
    root: PathBuf,
    sync: Syncer,
}

impl fmt::Debug for DurableUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableUpload").field("file", &self.file).finish_non_exhaustive()
    }
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await?;
        let (file, root, sync) = (self.file.clone(), self.root.clone(), self.sync.clone());
        match tokio::task::spawn_blocking(move || settle(&file, &root, &sync)).await {
            Ok(Ok(())) => Ok(result),
            Ok(Err(source)) => Err(object_store::Error::Generic { store: "Durable", source: Box::new(source) }),
            Err(join) => Err(object_store::Error::Generic { store: "Durable", source: Box::new(join) }),
        }
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

/// Whether a file name is a `LocalFileSystem` staging file: `{name}#{digits}`.
fn is_staging(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes staging files older than `age` at `now_ns` under `root` (left by a process
/// killed while writing; never listed, never read). Returns how many it deleted.
pub fn remove_stale_staging(root: &std::path::Path, age: Duration, now_ns: i64) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_owned()];
    let now = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(now_ns).unwrap_or(0));
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| now.duration_since(modified).is_ok_and(|a| a >= age));
            if kind.is_file() && stale && entry.file_name().to_str().is_some_and(is_staging) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(error) => {
                        tracing::warn!(path = %entry.path().display(), %error, "cannot remove a staging file")
                    }
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use std::sync::Mutex;

    /// Regression: raw batches and commits were renamed into place without `fsync`.
    #[tokio::test]
    async fn every_write_is_synced_with_its_directories_before_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let synced = Arc::new(Mutex::new(Vec::<PathBuf>::new()));
        let record = synced.clone();
        let sync: Syncer = Arc::new(move |path| {
            record.lock().unwrap().push(path.to_owned());
            fsync(path)
        });
        let store = Durable::new(root.clone(), sync).unwrap();
        store.put(&Path::from("raw/p/l/1.batch"), PutPayload::from_static(b"batch")).await.unwrap();
        let expected: Vec<PathBuf> =
            ["raw/p/l/1.batch", "raw/p/l", "raw/p", "raw", ""].iter().map(|p| root.join(p)).collect();
        let normalize =
            |paths: &[PathBuf]| -> Vec<PathBuf> { paths.iter().map(|p| p.components().collect::<PathBuf>()).collect() };
        assert_eq!(normalize(&synced.lock().unwrap()), normalize(&expected));

        synced.lock().unwrap().clear();
        let mut upload = store.put_multipart(&Path::from("tables/p/l/part-1.parquet")).await.unwrap();
        upload.put_part(PutPayload::from_static(b"parquet")).await.unwrap();
        assert!(synced.lock().unwrap().is_empty(), "nothing is durable before it completes");
        upload.complete().await.unwrap();
        assert_eq!(synced.lock().unwrap().first(), Some(&root.join("tables/p/l/part-1.parquet")));
        assert_eq!(std::fs::read(root.join("tables/p/l/part-1.parquet")).unwrap(), b"parquet");
    }

    /// Regression: `kill -9` during a write left `*.batch#N` files that nothing removed.
    #[test]
    fn stale_staging_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raw/p/l")).unwrap();
        std::fs::write(dir.path().join("raw/p/l/1.batch#3"), b"half").unwrap();
        std::fs::write(dir.path().join("raw/p/l/2.batch"), b"whole").unwrap();
        std::fs::write(dir.path().join("raw/p/l/odd#name.batch"), b"not staging").unwrap();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as i64;
        assert_eq!(remove_stale_staging(dir.path(), Duration::from_secs(3600), now), 0, "young ones may be in use");
        assert_eq!(remove_stale_staging(dir.path(), Duration::ZERO, now + 1_000_000_000), 1);
        assert!(!dir.path().join("raw/p/l/1.batch#3").exists());
        assert!(dir.path().join("raw/p/l/2.batch").exists() && dir.path().join("raw/p/l/odd#name.batch").exists());
    }
}
