//! A login storm against a running app (`docs/benchmarks.md`, "Login storm"): authenticated
//! `GET /api/projects` requests at a steady rate while, now and then, many users sign in at
//! once. It measures the GETs' latency in the quiet phases and during the storms, what each
//! sign-in was answered, and the app's resident memory. It asserts nothing itself: the storm
//! test (`examples/axum-saas/tests/storm.rs`) checks correctness on its report, and
//! `cargo xtask bench-storm` prints its timings.
//!
//! The GETs are paced: each of `get_connections` connections sends one request every
//! `get_interval`, and a request's latency runs from the time it was *due*, not the time it
//! was sent, so a stalled server is charged for the requests it kept from being sent
//! (no coordinated omission).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{AppUnderTest, Client, SessionCookie, flows};

/// What a storm run does.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Users signed up beforehand; each storm signs all of them in at once.
    pub users: usize,
    /// How many storms, each after a quiet phase.
    pub storms: usize,
    /// How long each quiet phase lasts; its first second (half, if shorter) lets the previous
    /// storm's backlog drain and is counted in neither phase.
    pub quiet: Duration,
    /// Connections sending GETs, each its own keep-alive connection.
    pub get_connections: usize,
    /// The time between two GETs on one connection.
    pub get_interval: Duration,
    /// How many sign-ups run at once while the users are made (sign-ups hash too: keep it
    /// within the app's hashing queue).
    pub sign_up_concurrency: usize,
}

/// A sign-in's answer: the status and, for an error, its problem `code` and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInOutcome {
    /// The HTTP status.
    pub status: u16,
    /// The problem's `code`, for a non-200 answer that has one.
    pub code: Option<String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

/// A GET that was not answered 200.
#[derive(Debug, Clone)]
pub struct FailedGet {
    /// During a storm (else in a quiet phase or between phases).
    pub in_storm: bool,
    /// The whole answer, as text.
    pub reply: String,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct StormReport {
    /// Latencies of the GETs due in the quiet phases (after their settling part), sorted.
    pub quiet: Vec<Duration>,
    /// Latencies of the GETs due during the storms, sorted.
    pub storm: Vec<Duration>,
    /// The GETs not answered 200, wherever they fell.
    pub failed_gets: Vec<FailedGet>,
    /// Every sign-in of every storm.
    pub sign_ins: Vec<SignInOutcome>,
    /// How long each storm lasted, from the first sign-in sent to the last one answered.
    pub storm_durations: Vec<Duration>,
    /// The app's resident memory once it had started (`VmRSS`, KiB), before any request.
    pub base_rss_kib: u64,
    /// The app's peak resident memory at the end (`VmHWM`, KiB).
    pub peak_rss_kib: u64,
}

impl StormReport {
    /// The `q`-quantile (0..=1, nearest rank) of sorted latencies; zero when there are none.
    #[must_use]
    pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// How many sign-ins got `status`.
    #[must_use]
    pub fn sign_ins_with(&self, status: u16) -> usize {
        self.sign_ins.iter().filter(|o| o.status == status).count()
    }

    /// The figures, one `name=value` per field on one line (what `cargo xtask bench-storm`
    /// reads): GET counts and quantiles in microseconds, sign-in outcomes, memory in KiB.
    #[must_use]
    pub fn summary_line(&self) -> String {
        let us = |d: Duration| d.as_micros();
        format!(
            "quiet_gets={} quiet_p50_us={} quiet_p99_us={} storm_gets={} storm_p50_us={} \
             storm_p99_us={} storm_max_us={} failed_gets={} sign_ins={} sign_in_200={} \
             sign_in_503={} sign_in_429={} sign_in_other={} storm_ms={} base_rss_kib={} \
             peak_rss_kib={}",
            self.quiet.len(),
            us(Self::quantile(&self.quiet, 0.50)),
            us(Self::quantile(&self.quiet, 0.99)),
            self.storm.len(),
            us(Self::quantile(&self.storm, 0.50)),
            us(Self::quantile(&self.storm, 0.99)),
            us(self.storm.last().copied().unwrap_or_default()),
            self.failed_gets.len(),
            self.sign_ins.len(),
            self.sign_ins_with(200),
            self.sign_ins_with(503),
            self.sign_ins_with(429),
            self.sign_ins.len()
                - self.sign_ins_with(200)
                - self.sign_ins_with(503)
                - self.sign_ins_with(429),
            self.storm_durations
                .iter()
                .map(|d| d.as_millis().to_string())
                .collect::<Vec<_>>()
                .join(","),
            self.base_rss_kib,
            self.peak_rss_kib,
        )
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
///
/// # Panics
/// When the file or the field cannot be read (not Linux, or the process is gone).
#[must_use]
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"))
}

/// The password every storm user has.
const PASSWORD: &str = flows::PASSWORD;

/// One GET as measured.
struct Sample {
    due: Instant,
    latency: Duration,
    failed: Option<String>,
}

/// Runs the storm against `app` (started just before, nothing sent to it yet).
///
/// # Panics
/// When the set-up fails (a sign-up or the organization not created, the first GET not 200)
/// or a request fails at the transport level.
pub async fn run(app: &AppUnderTest, config: &StormConfig) -> StormReport {
    let pid = app.pid().expect("the app is running");
    let base_rss_kib = proc_status_kib(pid, "VmRSS");

    // The users, a few at a time; the first one owns the organization whose projects are read.
    let emails: Vec<String> = (0..config.users)
        .map(|i| format!("storm-{i}@example.com"))
        .collect();
    let mut cookies = Vec::with_capacity(emails.len());
    for chunk in emails.chunks(config.sign_up_concurrency.max(1)) {
        cookies.extend(for_each_at_once(app.client(), chunk, sign_up).await);
    }
    let cookie = cookies.swap_remove(0);
    flows::create_org(app, &cookie, "Storm").await;
    app.client()
        .get_with("/api/projects", &cookie)
        .await
        .expect(200);

    // The GETs, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut loaders = Vec::new();
    for connection in 0..config.get_connections {
        let client = Client::new(app.base_url().to_owned());
        let cookie = cookie.clone();
        let stop = Arc::clone(&stop);
        let interval = config.get_interval;
        // Spread the connections over the interval.
        let offset = interval.mul_f64(
            f64::from(u32::try_from(connection).unwrap_or(0))
                / f64::from(u32::try_from(config.get_connections).unwrap_or(1)),
        );
        loaders.push(tokio::spawn(async move {
            get_loop(client, cookie, start + offset, interval, stop).await
        }));
    }

    let mut windows = Vec::new(); // (quiet from, quiet until = storm from, storm until)
    let mut sign_ins = Vec::new();
    let mut storm_durations = Vec::new();
    // The first part of each quiet phase is not counted: GETs held up by the storm before
    // it are still being answered then (the latency runs from when a GET was due).
    let settle = (config.quiet / 2).min(Duration::from_secs(1));
    for _ in 0..config.storms {
        let quiet_from = Instant::now() + settle;
        tokio::time::sleep(config.quiet).await;
        let storm_from = Instant::now();
        let outcomes = for_each_at_once(app.client(), &emails, sign_in).await;
        let storm_until = Instant::now();
        storm_durations.push(storm_until - storm_from);
        sign_ins.extend(outcomes);
        windows.push((quiet_from, storm_from, storm_until));
    }
    stop.store(true, Ordering::Relaxed);

    let mut report = StormReport {
        sign_ins,
        storm_durations,
        base_rss_kib,
        peak_rss_kib: proc_status_kib(pid, "VmHWM"),
        ..StormReport::default()
    };
    for loader in loaders {
        for sample in loader.await.expect("a GET loop") {
            let in_quiet = windows
                .iter()
                .any(|&(from, until, _)| sample.due >= from && sample.due < until);
            let in_storm = windows
                .iter()
                .any(|&(_, from, until)| sample.due >= from && sample.due < until);
            if let Some(reply) = sample.failed {
                report.failed_gets.push(FailedGet { in_storm, reply });
            }
            if in_quiet {
                report.quiet.push(sample.latency);
            } else if in_storm {
                report.storm.push(sample.latency);
            }
        }
    }
    report.quiet.sort_unstable();
    report.storm.sort_unstable();
    report
}

/// One connection's paced GETs, from `first` every `interval`, until `stop`.
async fn get_loop(
    client: Client,
    cookie: SessionCookie,
    first: Instant,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut due = first;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(due.into()).await;
        let reply = client.get_with("/api/projects", &cookie).await;
        let latency = due.elapsed();
        samples.push(Sample {
            due,
            latency,
            failed: (reply.status != 200).then(|| reply.to_string()),
        });
        due += interval;
    }
    samples
}

/// Signs `email` in and returns what the app answered.
async fn sign_in(client: Client, email: String) -> SignInOutcome {
    let reply = client
        .post("/auth/sign-in")
        .app_origin()
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await;
    let code = (reply.status != 200)
        .then(|| serde_json::from_slice::<serde_json::Value>(&reply.body).ok())
        .flatten()
        .and_then(|body| body["code"].as_str().map(str::to_owned));
    SignInOutcome {
        status: reply.status,
        code,
        retry_after: reply.header("retry-after").map(str::to_owned),
    }
}

/// Runs `task` for each email, all at once, and returns the outputs in the emails' order.
async fn for_each_at_once<T, F>(
    client: &Client,
    emails: &[String],
    task: fn(Client, String) -> F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = emails
        .iter()
        .map(|email| tokio::spawn(task(client.clone(), email.clone())))
        .collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("a request task"));
    }
    outputs
}

/// Signs `email` up with the storm password; asserts 201 and returns the session cookie.
async fn sign_up(client: Client, email: String) -> SessionCookie {
    let reply = client
        .post_json(
            "/auth/sign-up",
            &json!({"email": email, "password": PASSWORD, "name": "Storm"}),
        )
        .await;
    let _user = reply.json_with(201);
    reply.session_cookie()
}
