//! The browser tests both example apps run: headless Chromium (Debian's `chromium`) driven by
//! Playwright (`playwright-core` from npm) through `tests/browser/signup-flow.mjs` — sign up,
//! land on the dashboard, sign out, get sent to sign-in when opening `/dashboard`, sign in
//! again — and `tests/browser/mfa-flow.mjs` — a passkey added with Chromium's virtual
//! authenticator and a passwordless sign-in with it, an authenticator app (TOTP) set up, and a
//! password sign-in with its second step. `cargo xtask test` installs both; run
//! `cargo xtask setup` once before running them alone.

use std::path::{Path, PathBuf};

use crate::{AppUnderTest, StoreKind};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../browser")
}

fn assert_browser_installed(dir: &Path) {
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run `cargo xtask setup`"
    );
}

/// How old a session's authentication may be on step-up routes in the second-factor flow:
/// short, so that the flow meets the re-authentication dialog.
const MFA_FLOW_STEP_UP_SECS: &str = "10";

/// Runs `node tests/browser/<script> <url>` with `env`; panics with the script's output when
/// a step fails.
async fn run_script(dir: &Path, script: &str, url: &str, env: &[(&str, &str)]) {
    let output = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .arg(url)
        .envs(env.iter().copied())
        .env("SCREENSHOT_DIR", std::env::temp_dir())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser flow {script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
}

/// Starts the app binary `bin` on SQLite and runs the browser flow against it; panics with
/// the script's output when a step fails.
pub async fn run_signup_flow(bin: &str) {
    let dir = browser_dir();
    assert_browser_installed(&dir);
    let app = AppUnderTest::start(bin, StoreKind::Sqlite).await;
    run_script(&dir, "signup-flow.mjs", app.base_url(), &[]).await;
    app.finish().await;
}

/// Starts the app binary `bin` on SQLite at `http://localhost:PORT` (`APP_ORIGIN`: WebAuthn
/// takes a host name, not an IP address, as relying party) and runs the second-factor flow
/// against it: a passkey (Chromium's virtual authenticator) added and used to sign in, TOTP
/// set up (after a re-authentication: the step-up age is [`MFA_FLOW_STEP_UP_SECS`]) with codes
/// the script computes, a password sign-in with its second step, a workspace's MFA policy.
/// Panics with the script's output when a step fails.
pub async fn run_mfa_flow(bin: &str) {
    let dir = browser_dir();
    assert_browser_installed(&dir);
    // A free port, known before the app starts so that APP_ORIGIN can name it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let origin = format!("http://localhost:{port}");
    let bind = format!("127.0.0.1:{port}");
    let app = AppUnderTest::start_with(
        bin,
        StoreKind::Sqlite,
        &[
            ("BIND", bind.as_str()),
            ("APP_ORIGIN", origin.as_str()),
            ("AUTH_STEP_UP_MAX_AGE_SECS", MFA_FLOW_STEP_UP_SECS),
        ],
    )
    .await;
    run_script(
        &dir,
        "mfa-flow.mjs",
        &origin,
        &[("STEP_UP_MAX_AGE_SECS", MFA_FLOW_STEP_UP_SECS)],
    )
    .await;
    app.finish().await;
}
