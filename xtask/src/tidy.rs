//! Repository policy, checked by `cargo test` (rust-analyzer's "tidy" tests).

use std::path::{Path, PathBuf};

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(crate::project_root().join("crates"))
        .expect("crates/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn is_published(manifest: &str) -> bool {
    !manifest.lines().any(|l| l.trim() == "publish = false")
}

#[test]
fn every_crate_inherits_the_workspace_lints_and_package_fields() {
    for dir in crates() {
        let manifest = read(&dir.join("Cargo.toml"));
        for needle in ["[lints]\nworkspace = true", "version.workspace = true", "license.workspace = true"] {
            assert!(manifest.contains(needle), "{}: missing `{needle}`", dir.display());
        }
    }
}

#[test]
fn every_published_crate_is_ready_for_crates_io() {
    for dir in crates() {
        let manifest = read(&dir.join("Cargo.toml"));
        if !is_published(&manifest) {
            continue;
        }
        for key in ["description = ", "keywords = ", "categories = ", "readme = ", "[package.metadata.docs.rs]"] {
            assert!(manifest.contains(key), "{}: missing `{key}`", dir.display());
        }
        assert!(dir.join("README.md").is_file(), "{}: missing README.md", dir.display());
    }
}

#[test]
fn ci_packages_every_published_crate_and_only_those() {
    let args = crate::ci::step_args("package");
    assert!(args.contains(&"--workspace"), "the package step must cover the whole workspace, new crates included");
    let mut excluded: Vec<String> =
        args.windows(2).filter(|pair| pair[0] == "--exclude").map(|pair| pair[1].to_owned()).collect();
    excluded.sort();
    assert!(!is_published(&read(&crate::project_root().join("xtask/Cargo.toml"))), "xtask needs `publish = false`");
    let mut unpublished = vec!["xtask".to_owned()];
    for dir in crates() {
        let manifest = read(&dir.join("Cargo.toml"));
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{}: name the package after its directory",
            dir.display()
        );
        if !is_published(&manifest) {
            unpublished.push(name);
        }
    }
    unpublished.sort();
    assert_eq!(excluded, unpublished, "the ci `package` step must exclude exactly the `publish = false` crates");
}

#[test]
fn every_crate_root_opens_with_a_summary_and_a_feature_table() {
    for dir in crates() {
        let lib = read(&dir.join("src/lib.rs"));
        assert!(lib.starts_with("//! "), "{}: lib.rs must open with a `//!` summary", dir.display());
        assert!(lib.contains("# Feature flags"), "{}: lib.rs needs a feature table", dir.display());
        assert!(lib.contains("# Example"), "{}: lib.rs needs an example", dir.display());
    }
}

#[test]
fn workspace_dependencies_on_published_crates_carry_versions() {
    let manifest = read(&crate::project_root().join("Cargo.toml"));
    for line in manifest.lines().filter(|l| l.starts_with("infra-") && l.contains("path = ")) {
        let name = line.split_whitespace().next().unwrap_or_default();
        let crate_manifest = read(&crate::project_root().join("crates").join(name).join("Cargo.toml"));
        if is_published(&crate_manifest) {
            assert!(line.contains("version = "), "workspace dependency `{name}` needs a version to be publishable");
        }
    }
}

#[test]
fn the_test_kit_is_never_a_normal_dependency() {
    for dir in crates() {
        let manifest = read(&dir.join("Cargo.toml"));
        let normal = manifest.split("[dev-dependencies]").next().unwrap_or_default();
        let normal = normal.split("[build-dependencies]").next().unwrap_or_default();
        if dir.ends_with("infra-testkit") {
            continue;
        }
        assert!(!normal.contains("infra-testkit"), "{}: infra-testkit may only be a dev-dependency", dir.display());
    }
}

/// The longest a source file under `crates/*/src` may be, in lines: past it, split the file
/// by responsibility (a `foo/mod.rs` with submodules).
const MAX_SOURCE_LINES: usize = 600;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for path in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())).flatten() {
        let path = path.path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

#[test]
fn no_source_file_is_over_the_line_limit() {
    let root = crate::project_root();
    let mut oversized = Vec::new();
    for dir in crates() {
        for path in rust_files(&dir.join("src")) {
            let relative = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let lines = read(&path).lines().count();
            if lines > MAX_SOURCE_LINES {
                oversized.push(format!("{relative} ({lines} lines)"));
            }
        }
    }
    oversized.sort();
    assert!(
        oversized.is_empty(),
        "source files over {MAX_SOURCE_LINES} lines, split them by responsibility: {}",
        oversized.join(", ")
    );
}
