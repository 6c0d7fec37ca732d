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

# An LTS token whose one stream lands in shop/logs.
[[lts.tokens]]
token = "lts-shop-token"
project_ids = ["p1"]

[[lts.streams]]
project_id = "p1"
group_id = "g1"
stream_id = "s1"
project = "shop"
logstore = "logs"

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

/// Starts `sluice serve` with [`CONFIG`] plus `extra`, runs the browser script against it
/// with `env`, and returns the server and what the script reported (`RESULT {json}`).
fn browser_suite(dir: &std::path::Path, extra: &str, env: &[(&str, &str)]) -> (Server, serde_json::Value) {
    let browser = chromium();
    assert!(std::path::Path::new(&browser).exists(), "{browser} is missing: run scripts/setup-web (scripts/test does)");
    let config = dir.join("sluice.toml");
    std::fs::write(&config, format!("{extra}\n{CONFIG}")).unwrap();
    let server = Server::start(&dir.join("data"), &["--config", config.to_str().unwrap()]);
    let output = Command::new("node")
        .arg(repo_root().join("tests/browser/explorer.mjs"))
        .current_dir(repo_root())
        .env("SLUICE_URL", server.url(""))
        .env("SLUICE_SLS_ID", "shop-reader")
        .env("SLUICE_SLS_SECRET", "shop-reader-secret")
        .env("SLUICE_SHOP_KEY", "pk_shop")
        .env("SLUICE_BANK_KEY", "pk_bank")
        .env("SLUICE_LTS_TOKEN", "lts-shop-token")
        .env("CHROMIUM", &browser)
        .envs(env.iter().copied())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).unwrap())
        .expect("the script reports its results");
    (server, result)
}

#[test]
fn the_explorer_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (server, result) = browser_suite(dir.path(), "", &[]);

    // The page's histogram total is GetHistograms' total through the SLS SDK.
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

/// Every query answers Incomplete at first: the page says it is still counting, asks
/// again, and every check still holds.
#[test]
fn the_explorer_waits_for_incomplete_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, result) =
        browser_suite(dir.path(), "[server]\nquery_deadline_secs = 0", &[("SLUICE_EXPECT_INCOMPLETE", "1")]);
    assert_eq!(result["histogram"]["total"], 500);
}
