//! The black-box HTTP contract suite of the example apps
//! (`docs/http-contract.md`): one set of cases that runs, unchanged, against any app
//! binary that serves the contract, on SQLite and on Postgres.
//!
//! An example app runs the whole suite from one integration test file, `tests/contract.rs`:
//!
//! ```no_run
//! contract_suite::contract_suite!(env!("CARGO_BIN_EXE_axum-saas"));
//! # fn main() {}
//! ```
//!
//! which makes `sqlite::<case>` and `postgres::<case>` tests, one per case in [`cases`]. Each
//! test starts the binary as a process on a fresh store ([`AppUnderTest`]), talks to it over
//! HTTP only ([`Client`]), reads its mail from the development mailer's directory ([`Mail`]), and
//! tears it down — also when the case fails, after printing the app's output.
//!
//! The Postgres tests need a server: `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names one where the user may create databases;
//! each test makes its own `contract_<uuid>` and drops it afterwards.

#![forbid(unsafe_code)]

mod app;
pub mod browser;
pub mod cases;
mod check;
mod client;
pub mod cluster;
pub mod faults;
pub mod flows;
pub mod load;
mod mail;
mod pgserver;
pub mod provider;
pub mod storm;
pub mod totp;

pub use app::{AppUnderTest, DEFAULT_POSTGRES_URL, StoreKind, run_case};
pub use client::{
    BROWSER_ACCEPT, Client, DEFAULT_USER_AGENT, Reply, Request, SECURE_SESSION_COOKIE,
    SESSION_COOKIE, SessionCookie,
};
pub use mail::{Mail, token_from};
pub use pgserver::PrivatePostgres;
pub use reqwest::Method;

/// Expands to `mod sqlite { … }` and `mod postgres { … }` with one `#[test]` per case of the
/// contract, each running [`cases`]`::<case>` against a fresh start of the binary `$bin` on that
/// store (through [`run_case`], which brings its own Tokio runtime: the calling crate needs no
/// test runtime of its own).
///
/// ```no_run
/// // examples/axum-saas/tests/contract.rs
/// contract_suite::contract_suite!(env!("CARGO_BIN_EXE_axum-saas"));
/// # fn main() {}
/// ```
///
/// Run one store or one case with the usual filters: `cargo test -p axum-saas --test contract
/// sqlite::`, `… csrf_`.
#[macro_export]
macro_rules! contract_suite {
    ($bin:expr $(,)?) => {
        /// The contract on an SQLite file.
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $crate::__case_list!(__case_tests!(Sqlite, $bin));
        }
        /// The contract on a fresh Postgres database.
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $crate::__case_list!(__case_tests!(Postgres, $bin));
        }
    };
}

/// The fault tests ([`faults`]) and the several-instance test ([`cluster`]) of the app binary
/// `bin`, on Postgres, one `#[tokio::test]` each; each prints what it measured
/// (`--nocapture`). The calling crate needs `tokio` with its `macros` and `rt-multi-thread`
/// features.
///
/// ```ignore
/// // examples/axum-saas/tests/faults.rs
/// contract_suite::fault_suite!(env!("CARGO_BIN_EXE_axum-saas"));
/// ```
#[macro_export]
macro_rules! fault_suite {
    ($bin:expr $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_stopped_for_10_s_under_load() {
            $crate::faults::postgres_outage($bin).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn listen_connection_killed_under_load() {
            $crate::faults::change_feed_listener_killed($bin).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn instance_killed_with_sigkill_mid_traffic() {
            $crate::faults::instance_killed($bin).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn three_instances_behind_a_load_balancer() {
            $crate::cluster::three_instances($bin).await;
        }
    };
}

/// Prints a test's measured figures where `cargo test` shows them even when the test passes:
/// straight to the process's stderr, which the test harness does not capture (it captures only
/// `print!`/`eprint!`). The fault, cluster and storm tests report through it, so `cargo xtask
/// test` shows their figures.
#[macro_export]
macro_rules! figures {
    ($($arg:tt)*) => {
        $crate::write_figures(&format!($($arg)*))
    };
}

/// What [`figures!`] writes: `text` and a newline on stderr, uncaptured.
pub fn write_figures(text: &str) {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    // A test's report is not worth failing it over: a closed stderr drops the figures.
    let _ = writeln!(stderr, "{text}");
}

/// One `#[test]` per listed case, on store `$store`.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_tests {
    (($store:ident, $bin:expr) [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $crate::run_case($bin, $crate::StoreKind::$store, $crate::cases::$case);
            }
        )*
    };
}

/// The listed cases' names, as a `&[&str]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (() [$($case:ident),* $(,)?]) => {
        &[$(stringify!($case)),*]
    };
}

/// Type-checks every listed case against [`run_case`] exactly as the generated tests call it,
/// without running anything.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_signatures {
    (() [$($case:ident),* $(,)?]) => {
        const _: fn() = || {
            $( $crate::run_case("", $crate::StoreKind::Sqlite, $crate::cases::$case); )*
        };
    };
}

/// The names of every case, in the order the tests are generated.
pub const CASES: &[&str] = __case_list!(__case_names!());

__case_list!(__case_signatures!());

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::CASES;

    /// The names of the `pub async fn`s in `src/cases/*.rs`.
    fn pub_async_fns() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cases");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("src/cases") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("a case file");
            for line in source.lines() {
                if let Some(rest) = line.trim_start().strip_prefix("pub async fn ") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    names.push(name);
                }
            }
        }
        names
    }

    #[test]
    fn the_case_list_names_every_pub_async_fn_in_cases_once() {
        let listed: BTreeSet<&str> = CASES.iter().copied().collect();
        assert_eq!(
            listed.len(),
            CASES.len(),
            "a case is listed twice: {CASES:?}"
        );
        let defined = pub_async_fns();
        let defined_set: BTreeSet<&str> = defined.iter().map(String::as_str).collect();
        assert_eq!(defined_set.len(), defined.len(), "a case is defined twice");
        let unlisted: Vec<_> = defined_set.difference(&listed).collect();
        let undefined: Vec<_> = listed.difference(&defined_set).collect();
        assert!(
            unlisted.is_empty() && undefined.is_empty(),
            "src/cases/mod.rs's __case_list! and the pub async fns differ: \
             not listed {unlisted:?}, listed but not a pub async fn {undefined:?}"
        );
    }

    #[test]
    fn cases_are_named_after_behaviour_in_snake_case() {
        for case in CASES {
            assert!(
                case.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && case.split('_').count() >= 3,
                "{case} is not a snake_case sentence"
            );
        }
    }
}
