//! Picks the `rust` blocks of the README's section for this crate's adapter (see `lib.rs`).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let readme_path = manifest_dir.join("../../../README.md");
    println!("cargo::rerun-if-changed={}", readme_path.display());
    let readme = fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("{}: {e}", readme_path.display()));
    let package = env::var("CARGO_PKG_NAME").expect("CARGO_PKG_NAME");
    let adapter = match package.as_str() {
        "readme-axum" => "axum",
        "readme-actix" => "actix-web",
        other => panic!("build.rs serves readme-axum and readme-actix, not {other}"),
    };
    let blocks = rust_blocks(&readme, adapter);
    assert!(
        !blocks.is_empty(),
        "the README has no rust block in a section about {adapter}"
    );
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("readme.md");
    fs::write(&out, blocks).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// The fenced `rust…` blocks under `## ` headings that name `adapter`, as Markdown. Panics on a
/// `rust` block under a heading that names neither adapter, so that no block goes uncompiled.
fn rust_blocks(readme: &str, adapter: &str) -> String {
    let mut out = String::new();
    let mut heading = "";
    let mut fence: Option<bool> = None; // Some(keep) inside a block
    for line in readme.lines() {
        match fence {
            None if line.starts_with("## ") => heading = line,
            None if line.starts_with("```") => {
                let keep = line[3..].starts_with("rust") && {
                    let names = |a: &str| heading.contains(a);
                    match (names("axum"), names("actix-web")) {
                        (true, false) => adapter == "axum",
                        (false, true) => adapter == "actix-web",
                        _ => panic!(
                            "README: a rust block under {heading:?}, which names neither adapter \
                             (or both): mark it `text`, or teach tests/readme/build.rs"
                        ),
                    }
                };
                fence = Some(keep);
            }
            Some(_) if line.starts_with("```") => {
                if fence == Some(true) {
                    out.push_str("```\n\n");
                }
                fence = None;
                continue;
            }
            _ => {}
        }
        if fence == Some(true) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
