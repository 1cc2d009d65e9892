//! The library behind the `authctl` command line: opening the store a `DATABASE_URL` names
//! ([`backend`]) and importing users and organizations from Clerk and Auth0 ([`import`]).
//! The binary (`src/main.rs`) is the command line over these and `keystead::admin`.
#![forbid(unsafe_code)]

pub mod backend;
pub mod import;
