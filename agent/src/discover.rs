//! Which files a pipeline collects: `FilePaths` with `*` and `?` in any component and
//! one `**` (any directories below, at most `MaxDirSearchDepth` deep), minus the
//! `ExcludeFilePaths`, `ExcludeFiles` and `ExcludeDirs` blacklists; and the rotated
//! siblings of a file (`app.log.1`, `app.log-20250101`), which are read to their end
//! when a rotation happened faster than a scan.

use std::path::{Path, PathBuf};

use crate::config::FileInput;

/// What a scan found: the files that match, and the directories they were looked for in
/// (to watch).
#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

/// Lists the files `input` matches now.
pub fn scan(input: &FileInput) -> Found {
    let mut found = Found::default();
    for pattern in &input.file_paths {
        let (dir, name) = match pattern.rsplit_once('/') {
            Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
            None => continue,
        };
        let mut dirs = Vec::new();
        expand_dirs(Path::new("/"), &components(dir), input.max_dir_search_depth, &mut dirs);
        for d in dirs {
            if excluded_dir(input, &d) {
                continue;
            }
            found.dirs.push(d.clone());
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else { continue };
                if !wildcard(name, file_name) || input.exclude_files.iter().any(|p| wildcard(p, file_name)) {
                    continue;
                }
                let path = entry.path();
                let Some(path_str) = path.to_str() else { continue };
                if input.exclude_file_paths.iter().any(|p| wildcard(p, path_str)) {
                    continue;
                }
                // Follows a symlink to its file.
                if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                    found.files.push(path);
                }
            }
        }
    }
    found.files.sort();
    found.files.dedup();
    found.dirs.sort();
    found.dirs.dedup();
    found
}

fn components(dir: &str) -> Vec<&str> {
    dir.split('/').filter(|c| !c.is_empty()).collect()
}

/// The directories `parts` (below `base`) stand for.
fn expand_dirs(base: &Path, parts: &[&str], depth: usize, out: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        out.push(base.to_owned());
        return;
    };
    if *first == "**" {
        // `**`: this directory and those below it, up to `depth` levels.
        let mut level = vec![base.to_owned()];
        for d in 0..=depth {
            let mut next = Vec::new();
            for dir in &level {
                expand_dirs(dir, rest, depth, out);
                if d < depth {
                    next.extend(subdirs(dir).into_iter().map(|(_, p)| p));
                }
            }
            level = next;
        }
    } else if first.contains(['*', '?']) {
        for (name, path) in subdirs(base) {
            if wildcard(first, &name) {
                expand_dirs(&path, rest, depth, out);
            }
        }
    } else {
        let path = base.join(first);
        if path.is_dir() {
            expand_dirs(&path, rest, depth, out);
        }
    }
}

fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
        .collect();
    out.sort();
    out
}

fn excluded_dir(input: &FileInput, dir: &Path) -> bool {
    let Some(dir) = dir.to_str() else { return true };
    input.exclude_dirs.iter().any(|p| {
        let p = p.trim_end_matches('/');
        wildcard(p, dir) || dir.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Whether `name` is a rotated sibling of `base` (`app.log` → `app.log.1`,
/// `app.log-20250101`, `app.log_2`), not compressed.
pub fn is_rotation_of(base: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(base) else { return false };
    let Some(sep) = rest.chars().next() else { return false };
    if !matches!(sep, '.' | '-' | '_') || rest.len() == 1 {
        return false;
    }
    const COMPRESSED: [&str; 7] = [".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".tmp"];
    !COMPRESSED.iter().any(|ext| name.ends_with(ext))
}

/// `*` (any run of characters) and `?` (one character), as fnmatch without flags.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Encoding;

    fn input(paths: &[&str], depth: usize) -> FileInput {
        FileInput {
            file_paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            max_dir_search_depth: depth,
            exclude_file_paths: Vec::new(),
            exclude_files: Vec::new(),
            exclude_dirs: Vec::new(),
            encoding: Encoding::Utf8,
            tail_size_kb: 1024,
            multiline: None,
            flush_timeout_secs: 5,
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.log", "app.log"));
        assert!(!wildcard("*.log", "app.log.1"));
        assert!(wildcard("app-?.log", "app-1.log"));
        assert!(wildcard("/var/*/x", "/var/a/b/x"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a*b", "acbd"));
    }

    #[test]
    fn rotations() {
        assert!(is_rotation_of("app.log", "app.log.1"));
        assert!(is_rotation_of("app.log", "app.log-20250101"));
        assert!(!is_rotation_of("app.log", "app.log.1.gz"));
        assert!(!is_rotation_of("app.log", "app.log"));
        assert!(!is_rotation_of("app.log", "app.logs"));
        assert!(!is_rotation_of("app.log", "app.log."));
    }

    #[test]
    fn double_star_goes_as_deep_as_allowed_and_excludes_apply() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in ["a.log", "x/b.log", "x/y/c.log", "x/y/z/d.log", "skip/e.log", "x/f.txt", "x/g.log.1"] {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "l\n").unwrap();
        }
        let pattern = format!("{}/**/*.log", root.display());
        let names = |f: &Found| -> Vec<String> {
            f.files.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect()
        };
        assert_eq!(names(&scan(&input(&[&pattern], 0))), vec!["a.log"]);
        assert_eq!(names(&scan(&input(&[&pattern], 2))), vec!["a.log", "skip/e.log", "x/b.log", "x/y/c.log"]);
        let mut excluding = input(&[&pattern], 5);
        excluding.exclude_dirs = vec![format!("{}/skip", root.display())];
        excluding.exclude_files = vec!["c.*".into()];
        excluding.exclude_file_paths = vec![format!("{}/x/y/z/*", root.display())];
        assert_eq!(names(&scan(&excluding)), vec!["a.log", "x/b.log"]);
        let star = format!("{}/*/b.log", root.display());
        assert_eq!(names(&scan(&input(&[&star], 0))), vec!["x/b.log"]);
    }
}
