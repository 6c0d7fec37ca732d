//! Raw batches waiting in the bucket (`raw/{project}/{logstore}/{batch id}.batch`):
//! which logstores have them, listing, reading, deleting, and moving an unreadable one to
//! `quarantine/`. Keys come from `sluice_ingest::layout`.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use sluice_ingest::batch::{self, BatchId, BatchRef};
use sluice_ingest::layout::{RAW_ROOT, RawBatchKey};
use sluice_ingest::record::BodyRef;
use sluice_proto::batch::BatchHeader;

use super::store::logstores_under;

/// Largest raw batch decoded, raw: ingest's own limit is far below.
pub const MAX_DECODED_BYTES: usize = 1 << 30;

/// A raw batch waiting in storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub key: RawBatchKey,
    /// Object size in bytes.
    pub size: u64,
    /// When the object was written: when the edge received the request.
    pub received_ns: i64,
}

/// A raw batch read back, with the time its object was written (when the edge received
/// the request). The body is kept decompressed and read (without copying) when used.
#[derive(Debug)]
pub struct ReceivedBatch {
    pub id: BatchId,
    pub header: BatchHeader,
    body: Vec<u8>,
    pub received_ns: i64,
}

impl ReceivedBatch {
    /// A raw batch's bytes checked and decompressed, or why they cannot be (then the
    /// batch belongs in quarantine).
    pub fn decode(bytes: &[u8], received_ns: i64) -> Result<Self, batch::BatchError> {
        let mut body = Vec::new();
        let BatchRef { id, header, .. } = batch::read_into(bytes, MAX_DECODED_BYTES, &mut body, BodyRef::default())?;
        Ok(Self { id, header, body, received_ns })
    }

    /// The batch, its body read again (it was read once when decoded).
    pub fn batch(&self) -> Result<BatchRef<'_>, batch::BatchError> {
        let body =
            BodyRef::read(&self.body, BodyRef::default()).map_err(|e| batch::BatchError::Corrupt(e.to_string()))?;
        Ok(BatchRef { id: self.id, header: self.header.clone(), body })
    }
}

/// Every logstore that has raw batches, as (project, logstore), sorted.
pub async fn logstores(store: &dyn ObjectStore) -> Result<Vec<(String, String)>, object_store::Error> {
    logstores_under(store, RAW_ROOT).await
}

/// A logstore's raw batches. Other objects under its prefix (a store's temporary files)
/// are not raw batches and are left out.
pub async fn list(store: &dyn ObjectStore, project: &str, logstore: &str) -> Result<Vec<Pending>, object_store::Error> {
    let prefix = Path::parse(RawBatchKey::prefix(project, logstore))?;
    let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    Ok(metas
        .into_iter()
        .filter_map(|meta| {
            let key: RawBatchKey = meta.location.as_ref().parse().ok()?;
            let received_ns = meta.last_modified.timestamp_nanos_opt().unwrap_or(0);
            Some(Pending { key, size: meta.size, received_ns })
        })
        .collect())
}

/// A raw batch's bytes; `None` when it is gone (compacted and deleted since the listing).
pub async fn read(store: &dyn ObjectStore, key: &RawBatchKey) -> Result<Option<Bytes>, object_store::Error> {
    match store.get(&Path::parse(key.to_string())?).await {
        Ok(got) => Ok(Some(got.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes a raw batch; one already gone is fine.
pub async fn delete(store: &dyn ObjectStore, key: &RawBatchKey) -> Result<(), object_store::Error> {
    match store.delete(&Path::parse(key.to_string())?).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves an unreadable raw batch out of the way, keeping it for an operator.
pub async fn quarantine(store: &dyn ObjectStore, key: &RawBatchKey) -> Result<(), object_store::Error> {
    let from = Path::parse(key.to_string())?;
    let to = Path::parse(format!("quarantine/{key}"))?;
    store.copy(&from, &to).await?;
    store.delete(&from).await
}
