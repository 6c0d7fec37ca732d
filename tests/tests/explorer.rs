//! The log explorer in a real browser: `tests/browser/explorer.mjs` drives Debian's
//! chromium with playwright-core against a `sluice serve` with two projects, seeding
//! logs through the Proliferate ingest API; then the histogram total the page showed is
//! checked against GetHistograms through the unmodified SLS Python SDK.
//!
//! `SLUICE_SCREENSHOTS=DIR` saves the page's screenshots there (README's come from
//! `SLUICE_SCREENSHOTS=$PWD/docs/screenshots cargo test -p sluice-tests --test explorer`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{Server, repo_root, run_python};
use std::process::Command;

const CONFIG: &str = r#"
[[projects]]
name = "shop"
[[projects.logstores]]
name = "logs"

[[projects]]
name = "bank"
[[projects.logstores]]
name = "logs"

# The demo key (all projects): pre-filled by the page, and the SDK's key below.
[[sls.access_keys]]
id = "sluice-demo"
secret = "sluice-demo-secret"

[[sls.access_keys]]
id = "shop-reader"
secret = "shop-reader-secret"
projects = ["shop"]

[[proliferate.keys]]
key = "pk_shop"
project = "shop"
logstore = "logs"

[[proliferate.keys]]
key = "pk_bank"
project = "bank"
logstore = "logs"
"#;

/// Where Playwright finds chromium (`scripts/setup-web` installs Debian's).
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

#[test]
fn the_explorer_in_chromium() {
    let browser = chromium();
    assert!(std::path::Path::new(&browser).exists(), "{browser} is missing: run scripts/setup-web (scripts/test does)");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let script = repo_root().join("tests/browser/explorer.mjs");
    let mut command = Command::new("node");
    command
        .arg(&script)
        .current_dir(repo_root())
        .env("SLUICE_URL", server.url(""))
        .env("SLUICE_SLS_ID", "shop-reader")
        .env("SLUICE_SLS_SECRET", "shop-reader-secret")
        .env("SLUICE_SHOP_KEY", "pk_shop")
        .env("SLUICE_BANK_KEY", "pk_bank")
        .env("CHROMIUM", &browser);
    let output = command.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The page's histogram total is GetHistograms' total through the SLS SDK.
    let result: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).unwrap())
        .expect("the script reports its results");
    let shown = &result["histogram"];
    let (from, to) = (shown["from"].to_string(), shown["to"].to_string());
    let query = shown["query"].as_str().unwrap();
    let port = server.port.to_string();
    let args = [
        "histogram",
        "--port",
        &port,
        "--project",
        "shop",
        "--logstore",
        "logs",
        "--from",
        &from,
        "--to",
        &to,
        "--query",
        query,
    ];
    let sdk: serde_json::Value = serde_json::from_str(&run_python("query_logs.py", &args)).unwrap();
    assert_eq!(sdk["complete"], true);
    assert_eq!(sdk["count"], shown["total"], "the page's total is GetHistograms' ({query})");
    println!(
        "histogram total: page {} = SDK {}; live tail showed a new log after {} ms",
        shown["total"], sdk["count"], result["liveTailMs"]
    );
}
