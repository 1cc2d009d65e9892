//! One run of the login-storm benchmark (`cargo xtask bench-storm`, `docs/benchmarks.md`,
//! "Login storm"): starts the app binary on a fresh SQLite file, pinned to the given CPUs with
//! one Tokio worker, runs [`contract_suite::storm::run`] against it and prints the report's
//! summary line (`name=value …`) on stdout.
//!
//! ```text
//! storm-bench APP_BIN [--bound N] [--app-cpus LIST] [--storms N] [--quiet-secs S]
//!             [--connections N] [--interval-us N] [--workers N]
//! ```
//!
//! `--bound` sets `AUTH_PASSWORD_CONCURRENCY` (unset: the library's default, one permit per CPU
//! the app may run on); `--app-cpus` (default `0`) is given to `taskset -c`; `--workers`
//! (default 1) to `TOKIO_WORKER_THREADS`. Run it pinned itself (`taskset -c 1 storm-bench …`),
//! so that the GETs and sign-ins it sends do not share the app's core.

use std::process::ExitCode;
use std::time::Duration;

use contract_suite::storm::{self, StormConfig};
use contract_suite::{AppUnderTest, StoreKind};

fn main() -> ExitCode {
    match parse(std::env::args().skip(1).collect()) {
        Ok(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a Tokio runtime");
            runtime.block_on(run(args));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("storm-bench: {message}");
            ExitCode::from(2)
        }
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    app: String,
    bound: Option<String>,
    app_cpus: String,
    workers: String,
    config: StormConfig,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut args = args.into_iter();
    let app = args.next().ok_or("usage: storm-bench APP_BIN [options]")?;
    let mut parsed = Args {
        app,
        bound: None,
        app_cpus: "0".to_owned(),
        workers: "1".to_owned(),
        config: StormConfig {
            users: 64,
            storms: 3,
            quiet: Duration::from_secs(5),
            get_connections: 4,
            get_interval: Duration::from_millis(2),
            sign_up_concurrency: 4,
        },
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: expected a positive number, got {value:?}"))
        };
        match flag.as_str() {
            "--bound" => parsed.bound = Some(number()?.to_string()),
            "--app-cpus" => parsed.app_cpus.clone_from(&value),
            "--workers" => parsed.workers = number()?.to_string(),
            "--storms" => {
                parsed.config.storms = usize::try_from(number()?).map_err(|e| e.to_string())?;
            }
            "--quiet-secs" => parsed.config.quiet = Duration::from_secs(number()?),
            "--connections" => {
                parsed.config.get_connections =
                    usize::try_from(number()?).map_err(|e| e.to_string())?;
            }
            "--interval-us" => parsed.config.get_interval = Duration::from_micros(number()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(parsed)
}

async fn run(args: Args) {
    let mut env = vec![("TOKIO_WORKER_THREADS", args.workers.as_str())];
    if let Some(bound) = &args.bound {
        env.push(("AUTH_PASSWORD_CONCURRENCY", bound.as_str()));
    }
    let app = AppUnderTest::start_under(
        &["taskset", "-c", &args.app_cpus],
        &args.app,
        StoreKind::Sqlite,
        &env,
    )
    .await;
    let report = storm::run(&app, &args.config).await;
    println!("{}", report.summary_line());
    for failed in report.failed_gets.iter().take(3) {
        eprintln!(
            "a GET failed (in a storm: {}):\n{}",
            failed.in_storm, failed.reply
        );
    }
    app.finish().await;
}
