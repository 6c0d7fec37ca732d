//! `sluice serve` as a newcomer meets it: defaults, and errors that say what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::garage::Garage;
use sluice_tests::{Server, http, sluice_bin};
use std::process::Command;

fn fails_with(args: &[&str], expected: &[&str]) {
    let output = Command::new(sluice_bin()).args(args).env("RUST_LOG", "off").output().unwrap();
    assert!(!output.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in expected {
        assert!(stderr.contains(needle), "{args:?}: expected {needle:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn demo_credentials_stay_on_loopback() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    fails_with(&["serve", "--listen", "0.0.0.0:0", "--data", dir], &["demo credentials", "hint:"]);
}

#[test]
fn startup_errors_read_as_help() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let server = Server::start(data.path(), &[]);
    let taken = format!("127.0.0.1:{}", server.port);
    fails_with(&["serve", "--listen", &taken, "--data", dir], &["already in use", "--listen"]);
    fails_with(&["serve", "--config", "/nonexistent/sluice.toml"], &["cannot read the configuration file", "--config"]);
    let config = data.path().join("bad.toml");
    std::fs::write(&config, "[[projects]]\nname = \"shop\"\nlogstorez = []\n").unwrap();
    fails_with(&["serve", "--config", config.to_str().unwrap()], &["bad.toml", "unknown field `logstorez`"]);
    std::fs::write(&config, "[[sls.access_keys]]\nid = \"a\"\nsecret = { env = \"SLUICE_TEST_UNSET_SECRET\" }\n")
        .unwrap();
    fails_with(&["serve", "--config", config.to_str().unwrap()], &["SLUICE_TEST_UNSET_SECRET", "is not set"]);
    let file = data.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    fails_with(&["serve", "--listen", "127.0.0.1:0", "--data", file.to_str().unwrap()], &["data directory", "--data"]);
}

#[test]
fn store_errors_read_as_help() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    let with_storage = |endpoint: &str, key: &str, secret: &str| {
        std::fs::write(
            &config,
            format!(
                "[storage]\nendpoint = \"{endpoint}\"\nregion = \"garage\"\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n"
            ),
        )
        .unwrap();
        config.to_str().unwrap().to_owned()
    };
    let nobody = format!("http://127.0.0.1:{}", sluice_tests::free_port());
    let config_path = with_storage(&nobody, "GK1", "secret");
    for command in ["serve", "compact"] {
        fails_with(
            &[command, "--data", "s3://sluice", "--config", &config_path],
            &["cannot reach the store", "hint:", "[storage] endpoint"],
        );
    }
    let garage = Garage::start();
    let config_path = with_storage(&garage.endpoint(), &garage.key_id, "not-the-secret");
    for command in ["serve", "compact"] {
        fails_with(
            &[command, "--data", "s3://sluice", "--config", &config_path],
            &["refused Sluice's credentials", "secret_access_key"],
        );
    }
    let config_path = with_storage(&garage.endpoint(), &garage.key_id, &garage.secret);
    fails_with(&["compact", "--data", "s3://no-such-bucket", "--config", &config_path], &["does not exist", "hint:"]);
}

#[test]
fn health_and_unknown_paths() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let r = http().get(server.url("/health")).send().unwrap();
    assert_eq!((r.status().as_u16(), r.text().unwrap()), (200, "ok".to_owned()));
    assert_eq!(http().post(server.url("/nope")).send().unwrap().status().as_u16(), 404);
}
