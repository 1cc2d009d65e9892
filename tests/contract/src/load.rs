//! A steady load of credentialed requests, every answer kept with the time it was sent: what
//! the fault cases classify.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Client, SessionCookie};

/// How long one request of the load may take before it counts as a transport failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The credential a probe sends.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A session cookie.
    Cookie(SessionCookie),
    /// An API token, sent as `Authorization: Bearer`.
    Bearer(String),
}

/// One stream of the load: a `GET path` with a credential, and the status a correct answer has.
#[derive(Debug, Clone)]
pub struct Probe {
    /// A name for the figures (`"live cookie"`).
    pub name: String,
    /// The path requested.
    pub path: String,
    /// The credential sent.
    pub credential: Credential,
    /// The status of a correct answer (200 for a live credential, 401 for a revoked one).
    pub correct: u16,
}

impl Probe {
    /// A probe sending `cookie` to `path`.
    #[must_use]
    pub fn cookie(name: &str, path: &str, cookie: &SessionCookie, correct: u16) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            credential: Credential::Cookie(cookie.clone()),
            correct,
        }
    }

    /// A probe sending `token` as a Bearer token to `path`.
    #[must_use]
    pub fn bearer(name: &str, path: &str, token: &str, correct: u16) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            credential: Credential::Bearer(token.to_owned()),
            correct,
        }
    }
}

/// One answer (or transport failure) of the load.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The index of the probe in the list given to [`Load::start`].
    pub probe: usize,
    /// When the request was sent, from the load's start.
    pub sent: Duration,
    /// How long the answer took.
    pub took: Duration,
    /// The status, or the transport failure.
    pub outcome: Result<u16, String>,
}

impl Answer {
    /// The status, or 0 for a transport failure.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.outcome.as_ref().map_or(0, |s| *s)
    }
}

/// The load while it runs: one task per probe, each sending a request every `period` (and
/// never more than one at a time).
#[derive(Debug)]
pub struct Load {
    started: Instant,
    probes: Vec<Probe>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Answer>>>,
}

impl Load {
    /// Starts sending every probe through `client` every `period`.
    #[must_use]
    pub fn start(client: &Client, probes: Vec<Probe>, period: Duration) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = probes
            .iter()
            .enumerate()
            .map(|(index, probe)| {
                let (client, probe, stop) = (client.clone(), probe.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    let mut ticker = tokio::time::interval(period);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Acquire) {
                        ticker.tick().await;
                        let request = client.get(&probe.path).timeout(REQUEST_TIMEOUT);
                        let request = match &probe.credential {
                            Credential::Cookie(cookie) => request.cookie(cookie),
                            Credential::Bearer(token) => request.bearer(token),
                        };
                        let sent = Instant::now();
                        let outcome = request.try_send().await.map(|reply| reply.status);
                        answers.push(Answer {
                            probe: index,
                            sent: sent - started,
                            took: sent.elapsed(),
                            outcome,
                        });
                    }
                    answers
                })
            })
            .collect();
        Self {
            started,
            probes,
            stop,
            tasks,
        }
    }

    /// The time since the load started (the clock of [`Answer::sent`]).
    #[must_use]
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the load and gives every answer, in the order sent.
    ///
    /// # Panics
    /// When a probe's task panicked.
    pub async fn finish(self) -> Answers {
        self.stop.store(true, Ordering::Release);
        let mut answers = Vec::new();
        for task in self.tasks {
            answers.extend(task.await.expect("a probe of the load"));
        }
        answers.sort_by_key(|a| a.sent);
        Answers {
            probes: self.probes,
            answers,
        }
    }
}

/// Every answer of a finished [`Load`].
#[derive(Debug)]
pub struct Answers {
    /// The probes, by index.
    pub probes: Vec<Probe>,
    /// The answers, in the order sent.
    pub answers: Vec<Answer>,
}

impl Answers {
    /// The answers whose request was sent in `[from, to)`.
    pub fn sent_between(&self, from: Duration, to: Duration) -> impl Iterator<Item = &Answer> {
        self.answers
            .iter()
            .filter(move |a| a.sent >= from && a.sent < to)
    }

    /// Whether `answer` is its probe's correct answer.
    #[must_use]
    pub fn is_correct(&self, answer: &Answer) -> bool {
        answer.outcome == Ok(self.probes[answer.probe].correct)
    }

    /// The answers in `[from, to)` that break `allowed(probe's correct status, status)`, each
    /// described (probe, time, outcome), at most 20.
    #[must_use]
    pub fn breaking(
        &self,
        from: Duration,
        to: Duration,
        allowed: impl Fn(u16, &Answer) -> bool,
    ) -> Vec<String> {
        self.sent_between(from, to)
            .filter(|a| !allowed(self.probes[a.probe].correct, a))
            .take(20)
            .map(|a| {
                format!(
                    "{} sent at {:.3} s: {:?} (correct: {}) after {} ms",
                    self.probes[a.probe].name,
                    a.sent.as_secs_f64(),
                    a.outcome,
                    self.probes[a.probe].correct,
                    a.took.as_millis()
                )
            })
            .collect()
    }

    /// A table of the answers in each named phase `(name, from, to)`: per probe, how many of
    /// each status (0: transport failure), and the longest answer time.
    #[must_use]
    pub fn figures(&self, phases: &[(&str, Duration, Duration)]) -> String {
        let mut out = String::new();
        for (phase, from, to) in phases {
            let _ = writeln!(
                out,
                "  {phase} ({:.2} s to {:.2} s):",
                from.as_secs_f64(),
                to.as_secs_f64()
            );
            for (index, probe) in self.probes.iter().enumerate() {
                let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
                let mut longest = Duration::ZERO;
                for answer in self.sent_between(*from, *to).filter(|a| a.probe == index) {
                    *by_status.entry(answer.status()).or_default() += 1;
                    longest = longest.max(answer.took);
                }
                let counts: Vec<String> = by_status
                    .iter()
                    .map(|(status, n)| format!("{status}×{n}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "    {:<28} {:<32} longest {} ms",
                    probe.name,
                    counts.join(" "),
                    longest.as_millis()
                );
            }
        }
        out
    }
}
