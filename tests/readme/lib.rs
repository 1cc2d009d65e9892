//! The README's Rust code blocks, compiled by `cargo test -p readme-axum -p readme-actix --doc`
//! (and so by `cargo xtask test`): a block that stops compiling fails the build.
//!
//! Each block names one adapter (`#[require_permission]` finds the adapter among the crate's
//! dependencies), so the blocks of the axum section compile in `readme-axum` and those of the
//! actix-web section in `readme-actix`; `build.rs` picks them out of the README and refuses a
//! `rust` block in any other section. Blocks not meant to compile are marked `text` or `sh`.

/// The README's blocks for this crate's adapter, as this item's documentation.
#[cfg(doctest)]
#[doc = include_str!(concat!(env!("OUT_DIR"), "/readme.md"))]
pub struct Readme;
