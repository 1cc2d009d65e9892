//! Project automation, in Rust so that it needs nothing but cargo.
//!
//! `cargo xtask test` is the one command that runs every test on a fresh machine: it sets up
//! what the suites need (a running Postgres, the Python packages the interop tests
//! talk to, Debian's Chromium and the pinned `playwright-core` that the browser test drives it
//! with, and the pinned `oidc-provider`, the real OpenID provider of the sign-in-with-a-provider
//! cases), then runs them. It fails, rather than skipping anything, when a piece of that
//! set-up cannot be had. Before the tests it runs `cargo xtask msrv` and `cargo xtask package`
//! (see `publish.rs`): the declared minimum Rust version and the publishability of the ten
//! library crates.

mod bench_import;
mod bench_scale;
mod bench_storm;
mod publish;

use std::env;
use std::fs;
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
    ("jwt", "pyjwt"),
    ("cryptography", "cryptography"),
    ("schemathesis", "schemathesis"),
];

/// The browser that `tests/browser` drives: Debian's `chromium` package.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Debian's Python, which sees the `python3-*` packages apt installs (the TOTP interop test
/// runs pyotp with it).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// How long to wait for another apt/dpkg run to let go of its lock.
const APT_LOCK_WAIT: Duration = Duration::from_secs(300);

/// The Node project of the browser test, relative to the workspace root.
const BROWSER_TEST_DIR: &str = "tests/browser";

/// The Node project of the test OpenID provider, relative to the workspace root.
const OIDC_PROVIDER_DIR: &str = "tests/oidc-provider";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("setup") => setup().map(|_| ()),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str)),
        Some("package") => publish::package(),
        Some("msrv") => publish::msrv(),
        Some("bench-scale") => {
            ensure_postgres_for_bench().and_then(|url| bench_scale::bench_scale(&args[1..], &url))
        }
        Some("bench-storm") => bench_storm::bench_storm(args.get(1).map(String::as_str)),
        Some("bench-import") => {
            let url = setup_postgres_and_python();
            url.and_then(|url| bench_import::bench_import(args.get(1).map(String::as_str), &url))
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 test [ARGS]  set up (Postgres, Python packages, Chromium, python3-pyotp,\n               playwright-core, oidc-provider)\n               \
                 and run every test suite;\n               \
                 ARGS go to `cargo test`\n  \
                 setup        only the set-up\n  \
                 fuzz [SECS]  run the parsers' property tests (keystead's fuzz_parsers) for\n               \
                 SECS seconds in all (default 300) and print how many cases each ran\n  \
                 package      check that the ten published crates package (licences, readme,\n               \
                 notices, `cargo package --no-verify`)\n  \
                 msrv         check the workspace's rust-version against every dependency's\n               \
                 and the running rustc\n  \
                 bench-import [USERS]  time `authctl import clerk` of USERS users (default\n               \
                 100000) on SQLite and Postgres, with its peak memory\n  \
                 bench-scale [--users N] [--sample N] [--skip-hot] [--keep]\n               \
                 fill Postgres with N users (default 1000000), 10 sessions each, a token\n               \
                 each (10 % revoked), an org per 10 users; measure start-up, memory, the\n               \
                 cold and hot paths, table sizes and the cold path's plans\n  \
                 bench-storm [CYCLES]  the login storm: authenticated GETs' p50/p99 before and\n               \
                 during 64 simultaneous sign-ins, with the default hashing bound, 2 and 64\n               \
                 (release, pinned like benches/load.sh; default 3 cycles)"
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

/// Crates that `keystead` must never depend on: it is framework- and database-agnostic.
const CORE_FORBIDDEN_DEPENDENCIES: &[&str] = &["axum", "actix", "tower", "sqlx", "hyper"];

/// Sets up, checks the core's dependency boundary, the MSRV and the packages, then runs
/// `cargo test --workspace`.
fn test(extra: &[String]) -> Result<(), String> {
    let database_url = setup()?;
    check_core_boundary()?;
    publish::msrv()?;
    publish::package()?;
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

/// The time `cargo xtask fuzz` runs the property tests when not told, in seconds.
const DEFAULT_FUZZ_SECONDS: f64 = 300.0;

/// The test filter of the parsers' property tests (keystead's `fuzz_parsers` module).
const FUZZ_FILTER: &str = "fuzz_parsers::";

/// Random cases a property runs per round during `cargo xtask fuzz`.
const FUZZ_ROUND_CASES: &str = "512";

/// Runs the parsers' property tests (the ones `cargo test` runs briefly) for `seconds` in all:
/// each property gets an equal share and runs rounds of fresh random cases until it is spent.
/// Prints what each ran and the totals.
fn fuzz(seconds: Option<&str>) -> Result<(), String> {
    let seconds = match seconds {
        None => DEFAULT_FUZZ_SECONDS,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| format!("fuzz: {text:?} is not a number of seconds"))?,
    };
    let test_args = ["test", "-p", "keystead", "--lib", FUZZ_FILTER, "--"];
    step("listing the property tests");
    let listed = Command::new(cargo())
        .current_dir(workspace_root())
        .args(test_args)
        .args(["--list", "--format", "terse"])
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !listed.status.success() {
        return Err(format!(
            "could not list the property tests:\n{}",
            String::from_utf8_lossy(&listed.stderr)
        ));
    }
    let properties = fuzz_properties(&String::from_utf8_lossy(&listed.stdout));
    if properties.is_empty() {
        return Err(format!("no tests match {FUZZ_FILTER}"));
    }
    let share = seconds / properties.len() as f64;
    step(&format!(
        "fuzzing {} properties for {seconds:.0} s ({share:.1} s each, rounds of {FUZZ_ROUND_CASES} cases)",
        properties.len()
    ));
    for property in &properties {
        eprintln!("    {property}");
    }
    let started = Instant::now();
    let mut child = Command::new(cargo())
        .current_dir(workspace_root())
        .args(test_args)
        .args(["--test-threads=1", "--nocapture"])
        .env("AUTHKIT_FUZZ_SECONDS", format!("{share}"))
        .env("PROPTEST_CASES", FUZZ_ROUND_CASES)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    let mut ran = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(report) = line.strip_prefix("fuzz ") {
                ran.push(report.to_owned());
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("could not wait for cargo: {e}"))?;
    step(&format!(
        "fuzz summary ({:.0} s, {} of {} properties reported)",
        started.elapsed().as_secs_f64(),
        ran.len(),
        properties.len()
    ));
    let mut total = 0_u64;
    for report in &ran {
        eprintln!("    {report}");
        total += fuzz_cases(report).unwrap_or(0);
    }
    eprintln!("    total: {total} cases");
    if status.success() {
        Ok(())
    } else {
        Err(format!("a property failed ({status}); the input is above"))
    }
}

/// The test names in `cargo test -- --list --format terse` output (`name: test` lines).
fn fuzz_properties(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .filter(|name| name.contains(FUZZ_FILTER))
        .map(str::to_owned)
        .collect()
}

/// The number of cases in a property's report (`<name>: <N> cases in <T> s`).
fn fuzz_cases(report: &str) -> Option<u64> {
    let (_, rest) = report.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Postgres and the Python packages only (what `bench-import` needs); returns the database URL.
fn setup_postgres_and_python() -> Result<String, String> {
    let database_url = env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    ensure_postgres(&database_url)?;
    ensure_python_packages()?;
    Ok(database_url)
}

/// Postgres only (what `bench-scale` needs); returns the database URL.
fn ensure_postgres_for_bench() -> Result<String, String> {
    let database_url = env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    ensure_postgres(&database_url)?;
    Ok(database_url)
}

/// Makes sure every service and tool the tests need is there; returns the database URL.
fn setup() -> Result<String, String> {
    let database_url = env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    ensure_postgres(&database_url)?;
    ensure_python_packages()?;
    ensure_chromium()?;
    ensure_pyotp()?;
    ensure_node_package(BROWSER_TEST_DIR, "playwright-core", "the browser test")?;
    ensure_node_package(
        OIDC_PROVIDER_DIR,
        "oidc-provider",
        "the test OpenID provider",
    )?;
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

/// Fails when `cargo tree -p keystead` names a web framework or a database driver.
fn check_core_boundary() -> Result<(), String> {
    step("keystead's dependency tree has no web framework or SQL driver");
    let output = Command::new(cargo())
        .current_dir(workspace_root())
        .args([
            "tree",
            "-p",
            "keystead",
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
            "keystead depends on {offenders:?}; move that code to an adapter"
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
    step(
        "Python packages for the interop tests (bcrypt, argon2-cffi, aiosmtpd, pyjwt, cryptography, schemathesis)",
    );
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

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `apt-get ARGS` non-interactively (through `sudo` unless root), retrying for up to
/// [`APT_LOCK_WAIT`] while another apt or dpkg run holds the lock.
fn apt_get(args: &[&str]) -> Result<(), String> {
    let deadline = Instant::now() + APT_LOCK_WAIT;
    let root = is_root();
    let mut told_waiting = false;
    loop {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            // `env` rather than sudo's own VAR=value, which sudoers may refuse.
            sudo.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            sudo
        };
        let runner = if root { "apt-get" } else { "sudo apt-get" };
        let output = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::inherit())
            .output()
            .map_err(|e| {
                format!(
                    "could not run {runner} ({e}); run this as root or install the Debian \
                     packages ({}) by hand",
                    args.join(" ")
                )
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && apt_lock_held(&stderr) && Instant::now() < deadline {
            if !told_waiting {
                eprintln!(
                    "    another apt/dpkg run holds the lock; waiting up to {}s for it",
                    APT_LOCK_WAIT.as_secs()
                );
                told_waiting = true;
            }
            sleep(Duration::from_secs(5));
            continue;
        }
        eprint!("{stderr}");
        if output.status.success() {
            return Ok(());
        }
        return Err(format!(
            "`{runner} {}` failed ({})",
            args.join(" "),
            output.status
        ));
    }
}

/// Whether apt-get's error output says that another process holds apt's or dpkg's lock.
fn apt_lock_held(stderr: &str) -> bool {
    stderr.contains("Could not get lock") || stderr.contains("Unable to acquire the dpkg")
}

/// Installs Debian's `chromium` when [`CHROMIUM`] is missing.
fn ensure_chromium() -> Result<(), String> {
    step("Chromium for the browser test");
    if Path::new(CHROMIUM).exists() {
        eprintln!("    present at {CHROMIUM}");
        return Ok(());
    }
    eprintln!("    installing Debian's chromium");
    let install = ["install", "-y", "chromium"];
    if let Err(first) = apt_get(&install) {
        eprintln!("    {first}; updating the package lists and trying again");
        apt_get(&["update"])?;
        apt_get(&install)?;
    }
    if Path::new(CHROMIUM).exists() {
        Ok(())
    } else {
        Err(format!(
            "apt-get installed chromium but {CHROMIUM} is missing; the browser test needs it there"
        ))
    }
}

/// Whether Debian's Python ([`DEBIAN_PYTHON`]) imports `pyotp`.
fn debian_python_has_pyotp() -> bool {
    Command::new(DEBIAN_PYTHON)
        .args(["-c", "import pyotp"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs Debian's `python3-pyotp` (the independent TOTP implementation of keystead's
/// `totp_pyotp` test) when Debian's Python cannot import `pyotp`.
fn ensure_pyotp() -> Result<(), String> {
    step("pyotp for the TOTP interop test (Debian's python3-pyotp)");
    if debian_python_has_pyotp() {
        eprintln!("    present");
        return Ok(());
    }
    eprintln!("    installing Debian's python3-pyotp");
    let install = ["install", "-y", "python3-pyotp"];
    if let Err(first) = apt_get(&install) {
        eprintln!("    {first}; updating the package lists and trying again");
        apt_get(&["update"])?;
        apt_get(&install)?;
    }
    if debian_python_has_pyotp() {
        Ok(())
    } else {
        Err(format!(
            "apt-get installed python3-pyotp but `{DEBIAN_PYTHON} -c 'import pyotp'` fails"
        ))
    }
}

/// Installs the `package` pinned in `DIR/package.json` (with its lock file: `npm ci`) unless
/// that exact version is already in `DIR/node_modules`.
fn ensure_node_package(dir: &str, package: &str, purpose: &str) -> Result<(), String> {
    let dir = workspace_root().join(dir);
    let manifest = dir.join("package.json");
    let text = fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let pinned = json_string_field(&text, package)
        .filter(|v| is_exact_version(v))
        .ok_or_else(|| {
            format!(
                "{} must pin {package} to an exact version (like \"1.2.3\")",
                manifest.display()
            )
        })?;
    step(&format!("{package} {pinned} for {purpose}"));
    let installed = installed_version(&dir, package);
    if installed.as_deref() == Some(pinned.as_str()) {
        eprintln!("    present");
        return Ok(());
    }
    let npm_args: &[&str] = if dir.join("package-lock.json").exists() {
        &["ci", "--no-audit", "--no-fund"]
    } else {
        &["install", "--no-audit", "--no-fund"]
    };
    match &installed {
        Some(other) => eprintln!("    found {other}; running npm {}", npm_args[0]),
        None => eprintln!("    running npm {}", npm_args[0]),
    }
    let status = Command::new("npm")
        .current_dir(&dir)
        .args(npm_args)
        .status()
        .map_err(|e| format!("could not run npm ({e}); {purpose} needs Node.js (>= 20) and npm"))?;
    if !status.success() {
        return Err(format!(
            "`npm {}` in {} failed ({status})",
            npm_args.join(" "),
            dir.display()
        ));
    }
    match installed_version(&dir, package) {
        Some(v) if v == pinned => Ok(()),
        other => Err(format!(
            "after npm {}, {} has {package} {other:?}, not {pinned}; is package-lock.json \
             out of date with package.json?",
            npm_args[0],
            dir.join("node_modules").display()
        )),
    }
}

/// The version of `DIR/node_modules/PACKAGE`, if it is installed.
fn installed_version(dir: &Path, package: &str) -> Option<String> {
    let text =
        fs::read_to_string(dir.join("node_modules").join(package).join("package.json")).ok()?;
    json_string_field(&text, "version")
}

/// The string value of the first `"key": "value"` in a JSON text (enough for package.json).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let quoted = format!("\"{key}\"");
    let mut rest = json;
    while let Some(at) = rest.find(&quoted) {
        rest = &rest[at + quoted.len()..];
        if let Some(value) = rest.trim_start().strip_prefix(':') {
            let value = value.trim_start().strip_prefix('"')?;
            return value.find('"').map(|end| value[..end].to_owned());
        }
    }
    None
}

/// Whether `version` is exact (`1.65.1`), not a range (`^1.65.1`, `1.x`, `latest`).
fn is_exact_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fuzz_listing_and_reports() {
        let listing = "fuzz_parsers::next_is_always_a_path_on_this_site: test\n\
                       routes::tests::other: test\n\
                       fuzz_parsers::cookie_header_reads_as_the_plain_rule_does: test\n";
        assert_eq!(
            fuzz_properties(listing),
            [
                "fuzz_parsers::next_is_always_a_path_on_this_site",
                "fuzz_parsers::cookie_header_reads_as_the_plain_rule_does"
            ]
        );
        assert_eq!(
            fuzz_cases("next (local_path): 12288 cases in 30.0 s"),
            Some(12288)
        );
        assert_eq!(fuzz_cases("garbage"), None);
    }

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
        let tree = "keystead v0.1.0 (/x)\nargon2 v0.5.3\nsqlx-core v0.9.0\ntower v0.5.2\ntower v0.5.2 (*)\ntowering v1.0.0\n";
        assert_eq!(forbidden_in_tree(tree), vec!["sqlx-core", "tower"]);
        assert!(forbidden_in_tree("keystead v0.1.0\ntokio v1.0.0\n").is_empty());
    }

    #[test]
    fn reads_string_fields_of_package_json() {
        let manifest = r#"{
  "name": "authkit-browser-tests",
  "description": "uses \"playwright-core\" somehow",
  "dependencies": {
    "playwright-core" : "1.65.1"
  }
}"#;
        assert_eq!(
            json_string_field(manifest, "playwright-core").as_deref(),
            Some("1.65.1")
        );
        assert_eq!(
            json_string_field(manifest, "name").as_deref(),
            Some("authkit-browser-tests")
        );
        assert_eq!(json_string_field(manifest, "version"), None);
        assert_eq!(
            json_string_field(r#"{"version": "1.57.0", "x": 1}"#, "version").as_deref(),
            Some("1.57.0")
        );
    }

    #[test]
    fn only_exact_versions_count_as_pinned() {
        assert!(is_exact_version("1.65.1"));
        assert!(is_exact_version("10.0.12"));
        for range in [
            "^1.65.1",
            "~1.65.1",
            "1.65",
            "1.x.0",
            "latest",
            "",
            "1.65.1-beta",
        ] {
            assert!(!is_exact_version(range), "{range}");
        }
    }

    #[test]
    fn recognises_apt_lock_errors() {
        assert!(apt_lock_held(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (apt-get)\n"
        ));
        assert!(apt_lock_held(
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"
        ));
        assert!(!apt_lock_held("E: Unable to locate package chromium\n"));
    }
}
