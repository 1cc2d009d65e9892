//! `cargo xtask bench-storm [CYCLES]`: the login storm (the performance goal P4,
//! `docs/benchmarks.md`, "Login storm"). Builds `axum-saas` and the storm driver
//! (`contract-suite`'s `storm-bench`) in release mode, then for CYCLES cycles (default 3) runs
//! the storm once per hashing bound, interleaved: the library's default (unset; one permit per
//! CPU the app may run on, so 1 under the pin), 2, and 64 (the bound lifted). The app is pinned
//! to core 0 with one Tokio worker, the driver to core 1, as `benches/load.sh` pins the server
//! and wrk. Each run: 64 users signed up, then three times a 5 s quiet phase and a storm of 64
//! simultaneous sign-ins, with authenticated GETs at 2 000 a second throughout (4
//! connections, one every 2 ms each). Prints a
//! Markdown table: the medians over the cycles of the GETs' quiet and storm p50/p99, of each
//! run's storm p99 / quiet p99, the sign-in outcomes summed, and the largest peak RSS.

use std::collections::BTreeMap;
use std::process::Command;

use crate::{cargo, step, workspace_root};

/// Cycles when not told.
const DEFAULT_CYCLES: u32 = 3;

/// The configurations, in the order each cycle runs them: a label and `--bound`.
const BOUNDS: &[(&str, Option<&str>)] = &[
    ("default (1 on one core)", None),
    ("2", Some("2")),
    ("64 (lifted)", Some("64")),
];

/// The summary line of one run, as numbers.
type Run = BTreeMap<String, String>;

fn parse_line(line: &str) -> Run {
    line.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(run: &Run, key: &str) -> f64 {
    run.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Runs the benchmark and prints the table.
pub(crate) fn bench_storm(cycles: Option<&str>) -> Result<(), String> {
    let cycles: u32 = cycles
        .map_or(Ok(DEFAULT_CYCLES), str::parse)
        .map_err(|e| format!("CYCLES: {e}"))?;
    let root = workspace_root();
    step("cargo build --release -p axum-saas -p contract-suite --bin storm-bench");
    let status = Command::new(cargo())
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "axum-saas",
            "--bin",
            "axum-saas",
            "-p",
            "contract-suite",
            "--bin",
            "storm-bench",
        ])
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let target: std::path::PathBuf =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), Into::into);
    // Copies, so that another checkout building into a shared target directory cannot swap
    // the binaries between runs.
    let dir = std::env::temp_dir().join(format!("keystead-bench-storm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = |name: &str| {
        let to = dir.join(name);
        std::fs::copy(target.join("release").join(name), &to)
            .map(|_| to)
            .map_err(|e| format!("copying {name}: {e}"))
    };
    let app = copy("axum-saas")?;
    let driver = copy("storm-bench")?;
    let result = run_cycles(cycles, &app, &driver);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_cycles(cycles: u32, app: &std::path::Path, driver: &std::path::Path) -> Result<(), String> {
    let app = app.to_str().ok_or("a temporary path that is not UTF-8")?;

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); BOUNDS.len()];
    for cycle in 1..=cycles {
        for (i, (label, bound)) in BOUNDS.iter().enumerate() {
            step(&format!("cycle {cycle}/{cycles}: bound {label}"));
            let mut command = Command::new("taskset");
            command.args(["-c", "1"]).arg(driver).arg(app);
            if let Some(bound) = bound {
                command.args(["--bound", bound]);
            }
            let output = command
                .output()
                .map_err(|e| format!("could not run taskset ({e}); install util-linux"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !output.status.success() {
                return Err(format!(
                    "storm-bench failed ({}):\n{stdout}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            let line = stdout
                .lines()
                .find(|l| l.starts_with("quiet_gets="))
                .ok_or_else(|| format!("no summary line from storm-bench: {stdout}"))?;
            eprintln!("    {line}");
            runs[i].push(parse_line(line));
        }
    }

    println!(
        "| hashing bound | GET p50 quiet | GET p99 quiet | GET p50 storm | GET p99 storm | \
         storm p99 / quiet p99 | sign-ins 200 / 503 / 429 / other | storm length | peak RSS (start) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|---:|");
    for ((label, _), runs) in BOUNDS.iter().zip(&runs) {
        let ms = |key: &str| median(runs.iter().map(|r| number(r, key) / 1000.0).collect());
        let ratio = median(
            runs.iter()
                .map(|r| number(r, "storm_p99_us") / number(r, "quiet_p99_us"))
                .collect(),
        );
        let sum = |key: &str| runs.iter().map(|r| number(r, key)).sum::<f64>();
        let storm_ms = median(
            runs.iter()
                .flat_map(|r| {
                    r.get("storm_ms")
                        .map(|v| v.split(',').filter_map(|x| x.parse::<f64>().ok()).collect())
                        .unwrap_or_else(Vec::new)
                })
                .collect(),
        );
        let peak = runs
            .iter()
            .map(|r| number(r, "peak_rss_kib"))
            .fold(f64::NAN, f64::max);
        let start = median(runs.iter().map(|r| number(r, "base_rss_kib")).collect());
        let failed = sum("failed_gets");
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {ratio:.1} | {:.0} / {:.0} / {:.0} / {:.0} | {storm_ms:.0} ms | {:.0} MiB ({:.0} MiB) |",
            ms("quiet_p50_us"),
            ms("quiet_p99_us"),
            ms("storm_p50_us"),
            ms("storm_p99_us"),
            sum("sign_in_200"),
            sum("sign_in_503"),
            sum("sign_in_429"),
            sum("sign_in_other"),
            peak / 1024.0,
            start / 1024.0,
        );
        if failed > 0.0 {
            println!("|  ↳ {failed:.0} GETs not answered 200 |||||||||");
        }
    }
    println!(
        "\n{cycles} cycles; medians over the cycles (the ratio: the median of each run's own); \
         sign-ins summed; peak RSS the largest of the runs (VmHWM), the start's the median."
    );
    Ok(())
}
