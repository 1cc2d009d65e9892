//! A real OpenID provider for the sign-in-with-a-provider cases, and browsers that go through
//! it.
//!
//! [`TestProvider::shared`] starts `tests/oidc-provider/server.mjs` (panva's `oidc-provider`,
//! installed by `cargo xtask test` with `npm ci`) once per test process; it stops when the
//! process ends (its stdin closes). A [`Browser`] keeps cookies per origin, follows nothing by
//! itself, and fills in the provider's login form like a person would.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cookie::Cookie;
use reqwest::header::{self, HeaderMap};

use crate::app::AppUnderTest;
use crate::client::{DEFAULT_USER_AGENT, Reply, SessionCookie};

/// The test client registered at the provider (`server.mjs`).
pub const CLIENT_ID: &str = "authkit-test";
/// Its secret.
pub const CLIENT_SECRET: &str = "authkit-test-secret-0123456789abcdef";

/// The running provider.
#[derive(Debug)]
pub struct TestProvider {
    issuer: String,
    /// Kept so that its stdin stays open: the provider exits when this process does.
    _child: Mutex<Child>,
}

static PROVIDER: OnceLock<TestProvider> = OnceLock::new();

impl TestProvider {
    /// The provider of this test process, started on first use.
    ///
    /// # Panics
    /// When Node.js or the provider's packages are missing (run `cargo xtask test`, or `npm ci`
    /// in `tests/oidc-provider`), or it does not start (two tries of 45 seconds).
    pub fn shared() -> &'static Self {
        PROVIDER.get_or_init(Self::start)
    }

    /// Starts the provider; a start that prints no issuer within 45 s (seen once under CI
    /// load) is stopped and tried once more, and a second failure panics with what the
    /// provider wrote to stderr.
    fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules: run `cargo xtask test` (or `npm ci` there)",
            dir.display()
        );
        let mut failures = Vec::new();
        for _attempt in 0..2 {
            match Self::try_start(&dir) {
                Ok(provider) => return provider,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "the test OpenID provider did not print its issuer within 45 s, twice:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(dir: &std::path::Path) -> Result<Self, String> {
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("0")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node (the test OpenID provider): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let issuer = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|line| line.strip_prefix("issuer ").map(str::to_owned));
            let _ = tx.send(issuer);
            // Keep reading so that the provider never blocks on a full pipe.
            for _ in lines {}
        });
        // The last lines of stderr, for the failure message; read to the end for the same reason.
        let errors = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        let tail = errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut tail = tail
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if tail.len() == 20 {
                    tail.remove(0);
                }
                tail.push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(45)).ok().flatten() {
            Some(issuer) => Ok(Self {
                issuer,
                _child: Mutex::new(child),
            }),
            None => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                std::thread::sleep(Duration::from_millis(200));
                let errors = errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .join("\n");
                Err(format!("node exited ({status}); its stderr:\n{errors}"))
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The environment that configures an app's `google` provider (through `GOOGLE_ISSUER`)
    /// and its generic `oidc` provider at this provider, both for the test client.
    #[must_use]
    pub fn app_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GOOGLE_CLIENT_ID", CLIENT_ID.to_owned()),
            ("GOOGLE_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("GOOGLE_ISSUER", self.issuer.clone()),
            ("OIDC_ISSUER", self.issuer.clone()),
            ("OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
            ("OIDC_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ]
    }
}

/// Starts another instance of `app`'s binary with both providers configured at the shared
/// test provider, plus `extra_env` (which wins).
pub async fn app_with_providers(app: &AppUnderTest, extra_env: &[(&str, &str)]) -> AppUnderTest {
    let provider = TestProvider::shared();
    let mut env: Vec<(&str, String)> = provider.app_env();
    for (name, value) in extra_env {
        env.retain(|(n, _)| n != name);
        env.push((name, (*value).to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
    app.sibling_with(&env).await
}

/// One browser: cookies per origin (scheme, host and port), no automatic redirects.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    jar: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// `scheme://host:port` of an absolute URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("an absolute URL");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

/// Resolves a `Location` against the URL it came from.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_owned()
    } else {
        format!("{}{location}", origin_of(base))
    }
}

impl Browser {
    /// A browser with no cookies.
    ///
    /// # Panics
    /// When the HTTP client cannot be built.
    #[must_use]
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(DEFAULT_USER_AGENT)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cookies = jar.get(&origin_of(url))?;
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store_cookies(&self, url: &str, headers: &HeaderMap) {
        let mut jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cookies = jar.entry(origin_of(url)).or_default();
        for value in headers.get_all(header::SET_COOKIE) {
            let Some(cookie) = value
                .to_str()
                .ok()
                .and_then(|v| Cookie::parse(v.to_owned()).ok())
            else {
                continue;
            };
            let expired = cookie.value().is_empty()
                || cookie
                    .max_age()
                    .is_some_and(|age| age.is_zero() || age.is_negative());
            if expired {
                cookies.remove(cookie.name());
            } else {
                cookies.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }

    /// Sets cookie `name` for `origin`, as if that origin had set it.
    pub fn set_cookie(&self, origin: &str, name: &str, value: &str) {
        let mut jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jar.entry(origin_of(origin))
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }

    /// The value of cookie `name` this browser holds for `origin`.
    #[must_use]
    pub fn cookie(&self, origin: &str, name: &str) -> Option<String> {
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jar.get(&origin_of(origin))?.get(name).cloned()
    }

    /// This browser's session cookie at the app.
    ///
    /// # Panics
    /// When it has none.
    #[must_use]
    pub fn session(&self, app: &AppUnderTest) -> SessionCookie {
        SessionCookie {
            name: crate::SESSION_COOKIE.to_owned(),
            value: self
                .cookie(app.base_url(), crate::SESSION_COOKIE)
                .expect("a session cookie in the browser"),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Reply {
        let mut request = self.http.request(method.clone(), url);
        if let Some(cookies) = self.cookie_header(url) {
            request = request.header(header::COOKIE, cookies);
        }
        if let Some(form) = form {
            let body: String = form
                .iter()
                .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            request = request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, origin_of(url))
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url} failed: {e:?}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.store_cookies(url, &headers);
        let body = response.bytes().await.expect("a body").to_vec();
        Reply {
            label: format!("{method} {url}"),
            status,
            headers,
            body,
        }
    }

    /// GET an absolute URL (or a path at `app`).
    pub async fn get(&self, url: &str) -> Reply {
        self.send(reqwest::Method::GET, url, None).await
    }

    /// POST at the app, as a same-origin form without a body.
    pub async fn post(&self, url: &str) -> Reply {
        self.send(reqwest::Method::POST, url, Some(&[])).await
    }

    /// `GET /auth/oauth/{provider}[?next=…]` at `app`; the answer (302 to the provider).
    pub async fn start(&self, app: &AppUnderTest, provider: &str, next: Option<&str>) -> Reply {
        let mut url = format!("{}/auth/oauth/{provider}", app.base_url());
        if let Some(next) = next {
            url.push_str("?next=");
            url.push_str(&urlencode(next));
        }
        self.get(&url).await
    }

    /// Forgets the provider's session, follows the provider's redirects from
    /// `authorization_url`, signs in on its login form as `login` (see `server.mjs` for what the
    /// name means), and returns the URL the provider
    /// sends the browser back to (the app's callback), without following it.
    ///
    /// # Panics
    /// When the provider answers anything unexpected.
    pub async fn log_in_at_provider(&self, authorization_url: &str, login: &str) -> String {
        // Signed out at the provider first, so that its login form shows (a provider session
        // from an earlier case step would sign in as that account without asking).
        self.jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&origin_of(TestProvider::shared().issuer()));
        let mut url = authorization_url.to_owned();
        let mut submitted = false;
        for _ in 0..10 {
            if !url.starts_with(TestProvider::shared().issuer()) {
                return url;
            }
            let reply = self.get(&url).await;
            match reply.status {
                302 | 303 => {
                    url = resolve(&url, reply.header("location").expect("a Location"));
                }
                200 if !submitted => {
                    let html = reply.text();
                    let action = form_action(&html)
                        .unwrap_or_else(|| panic!("no login form at the provider: {reply}"));
                    let action = resolve(&url, &action);
                    let posted = self
                        .send(
                            reqwest::Method::POST,
                            &action,
                            Some(&[("prompt", "login"), ("login", login), ("password", "x")]),
                        )
                        .await;
                    assert!(
                        matches!(posted.status, 302 | 303),
                        "the provider's login form: {posted}"
                    );
                    submitted = true;
                    url = resolve(&action, posted.header("location").expect("a Location"));
                }
                _ => panic!("unexpected answer from the provider: {reply}"),
            }
        }
        panic!("the provider did not send the browser back: last at {url}");
    }

    /// Follows the provider's redirects to its login form and presses Cancel; returns the URL
    /// the provider sends the browser back to.
    pub async fn cancel_at_provider(&self, authorization_url: &str) -> String {
        let mut url = authorization_url.to_owned();
        for _ in 0..10 {
            if !url.starts_with(TestProvider::shared().issuer()) {
                return url;
            }
            let reply = self.get(&url).await;
            match reply.status {
                302 | 303 => url = resolve(&url, reply.header("location").expect("a Location")),
                200 => {
                    let html = reply.text();
                    let start = html.find("/abort").expect("a Cancel link");
                    let href_start = html[..start].rfind('"').expect("an href") + 1;
                    url = resolve(&url, &html[href_start..start + "/abort".len()]);
                }
                _ => panic!("unexpected answer from the provider: {reply}"),
            }
        }
        panic!("the provider did not send the browser back: last at {url}");
    }

    /// The whole sign-in: start at `app` (with `next`), log in at the provider as `login`, and
    /// GET the callback. Returns the callback's answer.
    pub async fn sign_in_with(
        &self,
        app: &AppUnderTest,
        provider: &str,
        login: &str,
        next: Option<&str>,
    ) -> Reply {
        let started = self.start(app, provider, next).await;
        assert_eq!(started.status, 302, "{started}");
        let callback = self
            .log_in_at_provider(started.header("location").expect("a Location"), login)
            .await;
        self.get(&callback).await
    }
}

/// The `action` of the first form in `html`.
fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let start = form.find("action=\"")? + "action=\"".len();
    let end = start + form[start..].find('"')?;
    Some(form[start..end].replace("&amp;", "&"))
}

/// Percent-encodes for a query or form value.
#[must_use]
pub fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of query parameter `name` in `url` (not decoded).
#[must_use]
pub fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// `url` with query parameter `name` set to `value` (already encoded).
#[must_use]
pub fn with_query_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    pairs.push(format!("{name}={value}"));
    format!("{base}?{}", pairs.join("&"))
}
