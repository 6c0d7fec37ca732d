//! The lake conformance suite (`sluice_compactor::conformance`: compaction stopped at
//! each step then run again, a client's late retry, fresh logs searchable before and
//! after compaction, merging and retention) on a real S3-compatible server, Garage,
//! through `sluice`'s own S3 store. The same suite runs in process on `memory://` and on
//! a directory in the compactor's own tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_compactor::lake::store::{self, StorageSettings};
use sluice_ingest::config::Secret;
use sluice_tests::garage::{BUCKET, Garage, REGION};

#[test]
fn conformance_on_garage() {
    let garage = Garage::start();
    let settings = StorageSettings {
        endpoint: Some(garage.endpoint()),
        region: Some(REGION.into()),
        path_style: Some(true),
        access_key_id: Some(Secret::Value(garage.key_id.clone())),
        secret_access_key: Some(Secret::Value(garage.secret.clone())),
        ..StorageSettings::default()
    };
    let storage = store::open(&format!("s3://{BUCKET}/conformance"), &settings).unwrap();
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        store::check(&storage).await.unwrap();
        sluice_compactor::conformance::run_all(&storage, now_ns).await.unwrap();
    });
}
