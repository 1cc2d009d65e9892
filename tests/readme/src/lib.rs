//! The README's Rust code blocks, compiled by `cargo test -p readme-doctests --doc` (and so by
//! `cargo xtask test`): a block that stops compiling fails the build. Blocks that are not meant
//! to compile are marked `text` or `sh` in the README. Nothing here is a library.

/// The README, as this item's documentation: rustdoc compiles its `rust` blocks.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;
