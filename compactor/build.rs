//! Type-checks the log explorer (`ui/`, TypeScript, strict) and bundles it into
//! `OUT_DIR` with the tsc and esbuild that `npm ci` installs (package-lock.json), so that
//! `sluice serve` carries its page and fetches nothing at run time: `app.ts` and what it
//! imports (uPlot) become `app.js` and `app.css`, minified.

use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let root = manifest.parent().ok_or("the crate is not in a workspace")?;
    let ui = manifest.join("ui");
    println!("cargo:rerun-if-changed={}", ui.display());
    println!("cargo:rerun-if-changed={}", root.join("package-lock.json").display());
    let esbuild = root.join("node_modules/.bin/esbuild");
    if !esbuild.exists() {
        return Err(format!(
            "the log explorer is bundled with esbuild from npm, which is not installed: run `npm ci` in {} \
             (scripts/test does)",
            root.display()
        ));
    }
    let tsc = root.join("node_modules/.bin/tsc");
    let checked = Command::new(&tsc)
        .arg("-p")
        .arg(ui.join("tsconfig.json"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tsc.display()))?;
    if !checked.status.success() {
        return Err(format!("ui/app.ts does not type-check:\n{}", String::from_utf8_lossy(&checked.stdout)));
    }
    let output = Command::new(&esbuild)
        .arg(ui.join("app.ts"))
        .args([
            "--bundle",
            "--minify",
            "--format=iife",
            "--target=es2022",
            "--legal-comments=none",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", out.join("app.js").display()))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", esbuild.display()))?;
    if !output.status.success() {
        return Err(format!("esbuild failed on ui/app.ts:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(())
}
