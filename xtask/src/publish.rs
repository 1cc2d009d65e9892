//! `cargo xtask package` and `cargo xtask msrv`: what keeps the crates publishable.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::{cargo, step, workspace_root};

/// The crates published to crates.io, in dependency order. Every other member (examples,
/// benches, tests, xtask) stays `publish = false`.
pub(crate) const PUBLISHED: &[&str] = &[
    "keystead-core",
    "keystead-macros",
    "keystead",
    "keystead-conformance",
    "keystead-sqlite",
    "keystead-postgres",
    "keystead-oidc",
    "keystead-axum",
    "keystead-actix",
    "keystead-cli",
];

/// The files at the root that each published crate carries a byte-for-byte copy of (cargo
/// packages only what is under the crate's directory).
const LICENCE_FILES: &[&str] = &["LICENSE-MIT", "LICENSE-APACHE"];

/// What a published crate's package must contain besides its sources, per crate.
fn required_files(krate: &str) -> Vec<&'static str> {
    let mut files = vec!["Cargo.toml", "README.md", "LICENSE-MIT", "LICENSE-APACHE"];
    if krate == "keystead" {
        // The shipped password list and its MIT notice travel together.
        files.extend(["THIRD-PARTY-NOTICES", "data/common-passwords.txt"]);
    }
    files
}

/// The workspace members, as directories relative to the root.
fn members(root: &Path) -> Result<Vec<String>, String> {
    let mut dirs = vec![
        "benches/load-target".to_owned(),
        "tests/contract".to_owned(),
        "tests/readme/axum".to_owned(),
        "tests/readme/actix".to_owned(),
        "xtask".to_owned(),
    ];
    for parent in ["crates", "examples"] {
        let entries = fs::read_dir(root.join(parent)).map_err(|e| format!("{parent}: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{parent}: {e}"))?;
            if entry.path().join("Cargo.toml").is_file() {
                dirs.push(format!("{parent}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The lines of a manifest with comments and surrounding blanks removed.
fn manifest_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
}

/// Checks what `cargo package` does not: the publish flags, the licence copies, the
/// notices; then packages each published crate and checks its file list; then builds the
/// packages of all of them together (`cargo package --no-verify`, which resolves each
/// package's dependencies as crates.io would, the workspace's own through a local overlay).
pub(crate) fn package() -> Result<(), String> {
    let root = workspace_root();
    step("publish flags, licence files and notices");
    let mut problems = Vec::new();
    for member in members(&root)? {
        let manifest = fs::read_to_string(root.join(&member).join("Cargo.toml"))
            .map_err(|e| format!("{member}/Cargo.toml: {e}"))?;
        let name = member.rsplit('/').next().unwrap_or(&member);
        let published = manifest_lines(&manifest).any(|l| l == "publish = true");
        let should = member.starts_with("crates/") && PUBLISHED.contains(&name);
        if published != should {
            problems.push(format!(
                "{member}: publish should be {should} (the published crates are {PUBLISHED:?})"
            ));
        }
        if member.starts_with("crates/") && !PUBLISHED.contains(&name) {
            problems.push(format!(
                "{member}: a crate under crates/ missing from PUBLISHED"
            ));
        }
    }
    for krate in PUBLISHED {
        let dir = root.join("crates").join(krate);
        let mut copies: Vec<&str> = LICENCE_FILES.to_vec();
        if *krate == "keystead" {
            copies.push("THIRD-PARTY-NOTICES");
        }
        for file in copies {
            let original = fs::read(root.join(file)).map_err(|e| format!("{file}: {e}"))?;
            match fs::read(dir.join(file)) {
                Ok(copy) if copy == original => {}
                Ok(_) => problems.push(format!(
                    "crates/{krate}/{file} differs from the root's {file}: copy it again"
                )),
                Err(e) => problems.push(format!("crates/{krate}/{file}: {e}")),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    eprintln!("    ok");

    for krate in PUBLISHED {
        step(&format!("cargo package --list -p {krate}"));
        let output = Command::new(cargo())
            .current_dir(&root)
            .args(["package", "--list", "--allow-dirty", "-p", krate])
            .output()
            .map_err(|e| format!("could not run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "cargo package --list -p {krate} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let listing = String::from_utf8_lossy(&output.stdout);
        let missing = missing_files(&listing, &required_files(krate));
        if !missing.is_empty() {
            return Err(format!("the package of {krate} lacks {missing:?}"));
        }
        eprintln!("    {} files", listing.lines().count());
    }

    step("cargo package --no-verify (the ten published crates)");
    let status = Command::new(cargo())
        .current_dir(&root)
        .args(["package", "--no-verify", "--allow-dirty"])
        .args(PUBLISHED.iter().flat_map(|k| ["-p", k]))
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo package failed ({status})"))
    }
}

/// The required files that a `cargo package --list` listing lacks.
fn missing_files<'a>(listing: &str, required: &[&'a str]) -> Vec<&'a str> {
    required
        .iter()
        .filter(|file| !listing.lines().any(|line| line.trim() == **file))
        .copied()
        .collect()
}

/// A `major.minor[.patch]` version, for comparing.
fn version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

/// The workspace's `rust-version`, from `[workspace.package]`.
fn workspace_rust_version(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest_lines(manifest) {
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(value) = line.strip_prefix("rust-version") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}

/// The `rust_version` of every package in `cargo metadata` output, with its id.
fn declared_rust_versions(metadata: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = metadata;
    let mut last_id = String::new();
    loop {
        let next_id = rest.find("\"id\":\"");
        let next_rv = rest.find("\"rust_version\":\"");
        match (next_id, next_rv) {
            (Some(i), Some(r)) if i < r => {
                let value = &rest[i + 6..];
                let end = value.find('"').unwrap_or(value.len());
                last_id = value[..end].to_owned();
                rest = &value[end..];
            }
            (_, Some(r)) => {
                let value = &rest[r + 16..];
                let end = value.find('"').unwrap_or(value.len());
                found.push((last_id.clone(), value[..end].to_owned()));
                rest = &value[end..];
            }
            (_, None) => return found,
        }
    }
}

/// What can be checked about the minimum supported Rust version with the one toolchain this
/// machine has (docs/design.md, "MSRV"): every member inherits the workspace's
/// `rust-version`; it is no older than any dependency's declared `rust-version` (so the
/// claim is not below what the dependency graph needs); and it is no newer than the running
/// rustc (which builds and tests the workspace right after). It does not prove that an older
/// toolchain at exactly that version builds the code.
pub(crate) fn msrv() -> Result<(), String> {
    let root = workspace_root();
    step("MSRV: rust-version inherited, not below any dependency's, not above this rustc");
    let manifest =
        fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    let declared = workspace_rust_version(&manifest)
        .ok_or("Cargo.toml: no rust-version in [workspace.package]")?;
    let msrv = version(&declared).ok_or(format!("rust-version {declared:?} is not a version"))?;
    let mut problems = Vec::new();
    for member in members(&root)? {
        let text = fs::read_to_string(root.join(&member).join("Cargo.toml"))
            .map_err(|e| format!("{member}/Cargo.toml: {e}"))?;
        if !manifest_lines(&text).any(|l| l == "rust-version.workspace = true") {
            problems.push(format!("{member}: lacks `rust-version.workspace = true`"));
        }
    }

    let rustc = Command::new(env_or("RUSTC", "rustc"))
        .arg("--version")
        .output()
        .map_err(|e| format!("could not run rustc: {e}"))?;
    let rustc = String::from_utf8_lossy(&rustc.stdout).into_owned();
    let running = rustc
        .split_whitespace()
        .nth(1)
        .and_then(|v| version(v.split('-').next().unwrap_or(v)))
        .ok_or(format!("cannot read the version of {rustc:?}"))?;
    if running < msrv {
        problems.push(format!(
            "rust-version {declared} is newer than the running {}: this toolchain cannot check it",
            rustc.trim()
        ));
    }

    let metadata = Command::new(cargo())
        .current_dir(&root)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .map_err(|e| format!("could not run cargo metadata: {e}"))?;
    if !metadata.status.success() {
        return Err(format!(
            "cargo metadata failed:\n{}",
            String::from_utf8_lossy(&metadata.stderr)
        ));
    }
    let metadata = String::from_utf8_lossy(&metadata.stdout);
    let mut highest: Option<((u64, u64, u64), String)> = None;
    for (id, rv) in declared_rust_versions(&metadata) {
        // The workspace's own members inherit the declared version; only dependencies count.
        let Some(v) = version(&rv).filter(|_| !id.starts_with("path+")) else {
            continue;
        };
        if v > msrv {
            problems.push(format!(
                "{id} declares rust-version {rv}, above ours ({declared})"
            ));
        }
        if highest.as_ref().is_none_or(|(h, _)| v > *h) {
            highest = Some((v, id));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    if let Some(((a, b, c), id)) = highest {
        eprintln!(
            "    rust-version {declared}; highest a dependency declares: {a}.{b}.{c} ({id}); rustc: {}",
            rustc.trim()
        );
    }
    Ok(())
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_workspace_rust_version() {
        let manifest = "[workspace]\nmembers = []\n\n[workspace.package]\nedition = \"2024\"\n\
                        # a comment\nrust-version = \"1.94\" # sqlx\n\n[workspace.dependencies]\n\
                        rust-version = \"9.9\"\n";
        assert_eq!(workspace_rust_version(manifest).as_deref(), Some("1.94"));
        assert_eq!(
            workspace_rust_version("[package]\nrust-version = \"1.80\"\n"),
            None
        );
    }

    #[test]
    fn compares_versions() {
        assert_eq!(version("1.94"), Some((1, 94, 0)));
        assert_eq!(version("1.88.1"), Some((1, 88, 1)));
        assert!(version("1.94").unwrap() > version("1.88.9").unwrap());
        assert_eq!(version("one"), None);
    }

    #[test]
    fn finds_declared_rust_versions_in_metadata() {
        let metadata = r#"{"packages":[{"name":"a","version":"1.0.0","id":"registry+x#a@1.0.0","dependencies":[{"name":"b","req":"^1"}],"rust_version":"1.70"},{"name":"b","id":"registry+x#b@1.2.0","rust_version":null},{"name":"c","id":"path+file:///w#c@0.1.0","rust_version":"1.94"}],"resolve":{"nodes":[{"id":"registry+x#a@1.0.0"}]}}"#;
        assert_eq!(
            declared_rust_versions(metadata),
            vec![
                ("registry+x#a@1.0.0".to_owned(), "1.70".to_owned()),
                ("path+file:///w#c@0.1.0".to_owned(), "1.94".to_owned()),
            ]
        );
    }

    #[test]
    fn names_missing_package_files() {
        let listing = "Cargo.toml\nCargo.toml.orig\nLICENSE-MIT\nREADME.md\nsrc/lib.rs\n";
        assert_eq!(
            missing_files(listing, &["Cargo.toml", "LICENSE-MIT", "LICENSE-APACHE"]),
            vec!["LICENSE-APACHE"]
        );
    }
}
