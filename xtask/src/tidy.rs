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
