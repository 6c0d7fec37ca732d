//! A private Garage (a real S3-compatible server) for one test: its own ports and
//! directory, a bucket and a key, and stop/restart for fault injection.

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{free_port, kill_group};

pub const BUCKET: &str = "sluice";
pub const REGION: &str = "garage";

/// A running Garage node, stopped when dropped.
#[derive(Debug)]
pub struct Garage {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    pub s3_port: u16,
    pub key_id: String,
    pub secret: String,
}

/// The `garage` binary installed by `scripts/setup-tools`.
pub fn garage_bin() -> PathBuf {
    let path = std::env::var_os("SLUICE_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cache_dir().join("tools/garage-2.5.0-sqlite/bin/garage"));
    assert!(path.exists(), "{} is missing: run scripts/setup-tools (scripts/test does)", path.display());
    path
}

impl Garage {
    /// Starts a single-node Garage with bucket `sluice` and a read/write key.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let secret: String = (0..4).map(|_| format!("{:016x}", rand_u64())).collect();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"test-admin-token\"\n",
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .expect("garage.toml");
        let mut garage = Self { dir, config, child: None, s3_port: s3, key_id: String::new(), secret: String::new() };
        garage.restart();
        let id = garage.cli(&["node", "id", "-q"]);
        let id = id.trim().split('@').next().expect("a node id").to_owned();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["bucket", "create", BUCKET]);
        let key = garage.cli(&["key", "create", "sluice-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in {key}"))
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        garage.cli(&["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "sluice-test"]);
        garage
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(garage_bin()).arg("-c").arg(&self.config).args(args).output().expect("garage runs");
        assert!(output.status.success(), "garage {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops the server (an outage). Data stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// Starts the server again on the same ports and data, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("a log file");
        let mut command = Command::new(garage_bin());
        command.arg("-c").arg(&self.config).arg("server").stdout(Stdio::from(log)).stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        self.child = Some(command.spawn().expect("garage starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = Command::new(garage_bin()).arg("-c").arg(&self.config).arg("status").output();
            let s3_up = std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok();
            if status.is_ok_and(|o| o.status.success()) && s3_up {
                return;
            }
            assert!(Instant::now() < deadline, "garage did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// An S3 client (object_store) for the bucket.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region(REGION)
                .with_bucket_name(BUCKET)
                .with_access_key_id(&self.key_id)
                .with_secret_access_key(&self.secret)
                .build()
                .expect("an s3 client"),
        )
    }

    /// Every object under `prefix`, with its bytes, sorted by key.
    pub fn objects(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let store = self.store();
        crate::block_on(async move {
            use futures::TryStreamExt;
            let prefix = object_store::path::Path::from(prefix);
            let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await.expect("list");
            let mut out = Vec::new();
            for meta in metas {
                let bytes = store.get(&meta.location).await.expect("get").bytes().await.expect("bytes");
                out.push((meta.location.to_string(), bytes.to_vec()));
            }
            out.sort();
            out
        })
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}
