//! Project automation, in Rust so that it needs nothing but cargo.
//!
//! `cargo xtask test` is the one command that runs every test on a fresh machine: it sets up
//! what the suites need (a running Postgres, the Python packages the interop tests
//! talk to), then runs them. It fails, rather than skipping anything, when a piece of that
//! set-up cannot be had.

use std::env;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Where tests find Postgres unless `DATABASE_URL` says otherwise.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Python packages the interop tests run: bcrypt and argon2-cffi (password hashes), aiosmtpd (a real SMTP server).
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("bcrypt", "bcrypt"),
    ("argon2", "argon2-cffi"),
    ("aiosmtpd", "aiosmtpd"),
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("setup") => setup().map(|_| ()),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 test [ARGS]  set up (Postgres, Python packages) and run every test suite;\n               \
                 ARGS go to `cargo test`\n  \
                 setup        only the set-up"
            );
            Err("unknown command".to_owned())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Crates that `auth-core` must never depend on: it is framework- and database-agnostic.
const CORE_FORBIDDEN_DEPENDENCIES: &[&str] = &["axum", "actix", "tower", "sqlx", "hyper"];

/// Sets up, checks the core's dependency boundary, then runs `cargo test --workspace`.
fn test(extra: &[String]) -> Result<(), String> {
    let database_url = setup()?;
    check_core_boundary()?;
    step("cargo test --workspace");
    let status = Command::new(cargo())
        .current_dir(workspace_root())
        .args(["test", "--workspace"])
        .args(extra)
        .env("DATABASE_URL", &database_url)
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("tests failed ({status})"))
    }
}

/// Makes sure every service and tool the tests need is there; returns the database URL.
fn setup() -> Result<String, String> {
    let database_url = env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    ensure_postgres(&database_url)?;
    ensure_python_packages()?;
    Ok(database_url)
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The workspace this command was run in.
///
/// Read from the `CARGO_MANIFEST_DIR` that `cargo run` sets at run time, not from the one baked
/// in at compile time: with a build cache shared between checkouts (as `.ci/run` sets up), the
/// binary may have been built in another checkout, and must still test this one.
fn workspace_root() -> PathBuf {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// Host and port of a `postgres://user@host:port/db` URL.
fn postgres_address(url: &str) -> Result<Vec<SocketAddr>, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| format!("DATABASE_URL must be a postgres:// URL, not {url:?}"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    with_port
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| format!("cannot resolve {with_port}: {e}"))
}

fn reachable(addrs: &[SocketAddr]) -> bool {
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
}

/// Starts the local Postgres cluster(s) with `pg_ctlcluster` when nothing answers, then waits.
fn ensure_postgres(url: &str) -> Result<(), String> {
    step("Postgres");
    let addrs = postgres_address(url)?;
    if reachable(&addrs) {
        eprintln!("    up at {addrs:?}");
        return Ok(());
    }
    let local = addrs.iter().all(|a| a.ip().is_loopback());
    if local {
        let versions = std::fs::read_dir("/etc/postgresql")
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for version in &versions {
            eprintln!("    starting cluster {version}/main");
            let status = Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", version, "main", "start"])
                .status();
            if let Err(e) = status {
                eprintln!("    pg_ctlcluster failed to run: {e}");
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reachable(&addrs) {
            eprintln!("    up at {addrs:?}");
            return Ok(());
        }
        sleep(Duration::from_millis(250));
    }
    Err(format!(
        "Postgres does not answer at {addrs:?} (DATABASE_URL={url}). The Postgres tests never \
         skip: start Postgres or point DATABASE_URL at one."
    ))
}

/// Fails when `cargo tree -p auth-core` names a web framework or a database driver.
fn check_core_boundary() -> Result<(), String> {
    step("auth-core's dependency tree has no web framework or SQL driver");
    let output = Command::new(cargo())
        .current_dir(workspace_root())
        .args([
            "tree",
            "-p",
            "auth-core",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
        ])
        .output()
        .map_err(|e| format!("could not run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let offenders = forbidden_in_tree(&tree);
    if offenders.is_empty() {
        eprintln!("    clean");
        Ok(())
    } else {
        Err(format!(
            "auth-core depends on {offenders:?}; move that code to an adapter"
        ))
    }
}

/// The crates of `cargo tree --prefix none` output whose names start with a forbidden name.
fn forbidden_in_tree(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            CORE_FORBIDDEN_DEPENDENCIES
                .iter()
                .any(|bad| name == bad || name.starts_with(&format!("{bad}-")))
        })
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

fn python() -> String {
    env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn python_has(module: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the Python packages that the interop tests run, if missing.
fn ensure_python_packages() -> Result<(), String> {
    step("Python packages for the interop tests (bcrypt, argon2-cffi, aiosmtpd)");
    let missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(module, _)| !python_has(module))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        eprintln!("    present");
        return Ok(());
    }
    eprintln!("    installing {missing:?}");
    let status = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(&missing)
        .status()
        .map_err(|e| format!("could not run {}: {e}", python()))?;
    if !status.success() {
        return Err(format!("pip install {missing:?} failed ({status})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_addresses() {
        let a = postgres_address("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(a, vec!["127.0.0.1:5432".parse().unwrap()]);
        let a = postgres_address("postgresql://u:p@127.0.0.1/db?sslmode=disable").unwrap();
        assert_eq!(a, vec!["127.0.0.1:5432".parse().unwrap()]);
        assert!(postgres_address("sqlite://var/app.db").is_err());
    }

    #[test]
    fn finds_forbidden_crates_in_a_tree() {
        let tree = "auth-core v0.1.0 (/x)\nargon2 v0.5.3\nsqlx-core v0.9.0\ntower v0.5.2\ntower v0.5.2 (*)\ntowering v1.0.0\n";
        assert_eq!(forbidden_in_tree(tree), vec!["sqlx-core", "tower"]);
        assert!(forbidden_in_tree("auth-core v0.1.0\ntokio v1.0.0\n").is_empty());
    }
}
