//! The native side of Sluice (`sluice`, tokio): it serves the same ingest APIs as the
//! edge worker through the same `sluice-ingest` core, compacts raw batches into a Delta
//! Lake table per logstore, and answers the query APIs. Its floors follow the data:
//!
//! - [`lake`]: what is in the bucket: the store, raw batches, the one column catalogue,
//!   rows and tables. Everything else stands on it.
//! - [`compact`] (raw batches into each logstore's table, exactly once), [`maintain`]
//!   (merging small files, retention, vacuum) and [`query`] (the SLS query language and
//!   Proliferate's search, answering Arrow rows) side by side on `lake`, none importing
//!   another.
//! - [`api`]: the HTTP APIs on top, one room per product API, and the server.
//! - [`settings`]: the TOML configuration file.
//! - [`conformance`]: the suite every store must pass (exactly once, fresh data
//!   searchable, merging, retention), run on `memory://`, a directory and Garage.
//!
//! The clock is read in `main.rs` and at the edge of each request, and passed down.

pub mod api;
pub mod compact;
pub mod conformance;
pub mod lake;
pub mod maintain;
pub mod query;
pub mod settings;

/// The floors hold: `compact`, `maintain` and `query` stand on `lake` and never on each
/// other (nor on `api`), none of them renders JSON, and the table's column names are
/// spelled in the catalogue only.
#[cfg(test)]
mod floors {
    use std::path::Path;

    fn sources(floor: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(floor)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Tests may say anything.
                    let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
                    out.push((path.display().to_string(), code));
                }
            }
        }
        out
    }

    #[test]
    fn each_floor_stands_on_the_lake_only() {
        for floor in ["compact", "maintain", "query", "lake"] {
            for (path, code) in sources(floor) {
                for other in ["compact", "maintain", "query", "api", "conformance", "settings"] {
                    if other != floor {
                        assert!(!code.contains(&format!("crate::{other}")), "{path} imports crate::{other}");
                    }
                }
                assert!(!code.contains("serde_json"), "{path} renders JSON: only api/ does");
                if !path.ends_with("schema.rs") {
                    for column in
                        crate::lake::schema::COLUMNS.iter().map(|c| c.name).chain([crate::lake::schema::FREQUENT])
                    {
                        assert!(!code.contains(&format!("\"{column}\"")), "{path} spells the column {column:?}");
                    }
                }
            }
        }
    }
}
