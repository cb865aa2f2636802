//! Build script: the migrations embedded by `sqlx::migrate!`, and whether the
//! repository around the crate is present.
//!
//! `sqlx::migrate!` embeds `core/migrations/` at compile time, because a
//! published crate can only contain files under its own directory. In the
//! repository, the top-level `migrations/` is the one source and
//! `core/migrations/` its copy: when both exist, the build fails unless every
//! file of one equals the file of the same path in the other
//! (`scripts/sync-migrations` makes the copy). The published crate has no
//! `../migrations` and skips the check.
//!
//! `cfg(chatkit_repository)` is set when the repository's README is next to
//! the crate, so that its Rust examples are compiled as doctests there (and
//! only there: the published crate does not contain that README).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=migrations");

    let crate_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let repository = crate_dir.join("..");
    if !is_repository(&repository) {
        return;
    }
    let readme = repository.join("README.md");
    if readme.is_file() {
        println!("cargo::rerun-if-changed={}", readme.display());
        println!("cargo::rustc-cfg=chatkit_repository");
    }
    let source = repository.join("migrations");
    if source.is_dir() {
        println!("cargo::rerun-if-changed={}", source.display());
        let drift = compare(&source, &crate_dir.join("migrations"));
        if !drift.is_empty() {
            eprintln!(
                "core/migrations/ must be a copy of migrations/ (the one source); they differ:"
            );
            for line in &drift {
                eprintln!("  {line}");
            }
            eprintln!("Run `scripts/sync-migrations` and commit both directories.");
            std::process::exit(1);
        }
    }
}

/// Whether `dir` is this repository: a workspace whose members include `core`.
fn is_repository(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.contains("[workspace]") && manifest.contains("\"core\""))
}

/// Every difference between the files under `source` and those under `copy`.
fn compare(source: &Path, copy: &Path) -> Vec<String> {
    let (a, b) = (files(source), files(copy));
    let mut drift = Vec::new();
    for path in a.union(&b) {
        let (left, right) = (source.join(path), copy.join(path));
        match (a.contains(path), b.contains(path)) {
            (true, false) => drift.push(format!("missing: core/migrations/{}", path.display())),
            (false, true) => drift.push(format!(
                "not in migrations/: core/migrations/{}",
                path.display()
            )),
            _ => {
                if std::fs::read(&left).ok() != std::fs::read(&right).ok() {
                    drift.push(format!("differs: {}", path.display()));
                }
            }
        }
    }
    drift
}

/// The paths (relative to `root`) of the files under `root`.
fn files(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(relative) = path.strip_prefix(root) {
                out.insert(relative.to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}
