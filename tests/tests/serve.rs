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
    assert_eq!((r.status().as_u16(), r.text().unwrap()), (200, r#"{"status":"ok"}"#.to_owned()));
    assert_eq!(http().post(server.url("/nope")).send().unwrap().status().as_u16(), 404);
}

/// The code blocks of README's "Send logs" and "Query logs", run as a newcomer would
/// (against this test's port instead of 8080): each runs, and each answer README shows
/// as JSON is the answer.
#[test]
fn readme_quick_start_works() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let readme = std::fs::read_to_string(sluice_tests::repo_root().join("README.md")).unwrap();
    let start = readme.find("### Send logs").expect("README has Send logs");
    let end = readme[start..].find("### The edge worker, locally").map(|e| start + e).expect("and a section after");
    let port = format!(":{}", server.port);
    let mut blocks = Vec::new();
    let mut rest = &readme[start..end];
    while let Some(at) = rest.find("```") {
        let opened = &rest[at + 3..];
        let (language, body) = opened.split_once('\n').unwrap();
        let close = body.find("```").unwrap();
        blocks.push((language.to_owned(), body[..close].replace(":8080", &port)));
        rest = &body[close + 3..];
    }
    let languages: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(languages, ["python", "sh", "sh", "python", "sh"], "README's quick start changed: update this test");
    let python_path = sluice_tests::repo_root().join("tests/python");
    let mut printed = String::new();
    for (language, code) in &blocks {
        let output = match language.as_str() {
            "python" => {
                // Where `*.localhost` does not resolve (README says what to do), resolve it here.
                let prelude = format!(
                    "import sys; sys.path.insert(0, {:?}); import sluice_sdk; sluice_sdk.resolve_localhost_subdomains()\n",
                    python_path.display().to_string()
                );
                Command::new(sluice_tests::python()).arg("-c").arg(format!("{prelude}{code}")).output().unwrap()
            }
            _ => Command::new("sh").arg("-c").arg(code).output().unwrap(),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{code}\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        // A command followed by `# {json}` prints exactly that.
        let shown: Vec<serde_json::Value> = code
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| !v.to_string().contains("..."))
            .collect();
        let answers: Vec<serde_json::Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        for expected in &shown {
            assert!(answers.contains(expected), "README shows {expected}, the command printed {stdout}");
        }
        printed.push_str(&stdout);
    }
    assert!(printed.contains("hello from the SLS SDK"), "the SDK finds the log it sent: {printed}");
    assert!(printed.contains("count"), "the histogram prints: {printed}");
}
