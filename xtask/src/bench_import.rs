//! `cargo xtask bench-import [USERS]`: how fast `authctl import clerk` takes a Clerk export
//! of USERS users (default 100,000), on SQLite and on Postgres, and its peak memory.
//!
//! The export is made by `crates/keystead-cli/tests/generate_exports.py` (bcrypt digests of cost
//! 10 from Python's bcrypt, 64 distinct ones reused: the import stores digests as they are, so
//! their number does not change its work). `authctl` is built in release mode and timed by
//! `/usr/bin/time` (wall time and maximum resident set size); each store is imported into
//! fresh, then the same file again (every line unchanged: the cost of a resumed run).

use std::path::Path;
use std::process::Command;

use crate::{cargo, step, workspace_root};

/// Users in the export when not told.
const DEFAULT_USERS: u32 = 100_000;

/// One timed run: wall seconds and peak RSS in KiB.
struct Timed {
    seconds: f64,
    max_rss_kib: u64,
}

fn timed(authctl: &Path, database_url: &str, args: &[&str]) -> Result<Timed, String> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "xtask-time %e %M"])
        .arg(authctl)
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .map_err(|e| format!("could not run /usr/bin/time ({e}); install Debian's `time`"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("xtask-time "))
        .ok_or_else(|| format!("no timing from /usr/bin/time: {stderr}"))?;
    let mut parts = line.split_whitespace();
    let seconds = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("unreadable wall time")?;
    let max_rss_kib = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("unreadable max RSS")?;
    // Exit 6: lines failed (the generator writes two malformed lines on purpose).
    if !matches!(output.status.code(), Some(0 | 6)) {
        return Err(format!("authctl {args:?} failed: {stderr}"));
    }
    Ok(Timed {
        seconds,
        max_rss_kib,
    })
}

fn run(what: &str, status: std::io::Result<std::process::ExitStatus>) -> Result<(), String> {
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("could not run {what}: {e}")),
    }
}

/// Runs the benchmark and prints a Markdown table.
pub(crate) fn bench_import(users: Option<&str>, admin_url: &str) -> Result<(), String> {
    let users: u32 = users
        .map_or(Ok(DEFAULT_USERS), str::parse)
        .map_err(|e| format!("USERS: {e}"))?;
    let root = workspace_root();
    let dir = std::env::temp_dir().join(format!("keystead-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    step(&format!("generating a Clerk export of {users} users"));
    run(
        "the export generator",
        Command::new("python3")
            .arg(root.join("crates/keystead-cli/tests/generate_exports.py"))
            .arg(&dir)
            .args([
                "--users",
                &users.to_string(),
                "--auth0-users",
                "0",
                "--orgs",
                "0",
            ])
            .args(["--distinct-hashes", "64", "--cost", "10"])
            .status(),
    )?;
    step("cargo build --release -p keystead-cli");
    run(
        "cargo build",
        Command::new(cargo())
            .current_dir(&root)
            .args(["build", "--release", "-p", "keystead-cli"])
            .status(),
    )?;
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), Into::into);
    let authctl = target.join("release/authctl");
    let csv = dir.join("clerk_users.csv");
    let csv = csv.to_str().ok_or("a temporary path that is not UTF-8")?;

    let name = format!("bench_import_{}", std::process::id());
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    run(
        "psql CREATE DATABASE",
        Command::new("psql")
            .args([admin_url, "-qc", &format!("CREATE DATABASE {name}")])
            .status(),
    )?;
    let stores = [
        (
            "SQLite",
            format!("sqlite://{}", dir.join("bench.db").display()),
        ),
        ("Postgres", format!("{base}/{name}")),
    ];
    let mut rows = Vec::new();
    let mut result = Ok(());
    for (store, url) in &stores {
        step(&format!("import into {store}"));
        let outcome = (|| {
            run(
                "authctl migrate",
                Command::new(&authctl)
                    .arg("migrate")
                    .env("DATABASE_URL", url)
                    .status(),
            )?;
            let fresh = timed(&authctl, url, &["import", "clerk", csv])?;
            let again = timed(&authctl, url, &["import", "clerk", csv])?;
            Ok::<_, String>((fresh, again))
        })();
        match outcome {
            Ok((fresh, again)) => rows.push(format!(
                "| {store} | {users} | {:.1} s | {:.0} users/s | {:.1} MiB | {:.1} s ({:.0} lines/s) |",
                fresh.seconds,
                f64::from(users) / fresh.seconds,
                fresh.max_rss_kib as f64 / 1024.0,
                again.seconds,
                f64::from(users) / again.seconds,
            )),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let _ = Command::new("psql")
        .args([admin_url, "-qc", &format!("DROP DATABASE IF EXISTS {name}")])
        .status();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!("| store | users | import | throughput | peak RSS | second run (all unchanged) |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
