//! The browser test both example apps run: headless Chromium (Debian's `chromium`) driven by
//! Playwright (`playwright-core` from npm) through `tests/browser/signup-flow.mjs` — sign up,
//! land on the dashboard, sign out, get sent to sign-in when opening `/dashboard`, sign in
//! again. `cargo xtask test` installs both; run `cargo xtask setup` once before running it
//! alone.

use std::path::{Path, PathBuf};

use crate::{AppUnderTest, StoreKind};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../browser")
}

/// Starts the app binary `bin` on SQLite and runs the browser flow against it; panics with
/// the script's output when a step fails.
pub async fn run_signup_flow(bin: &str) {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run `cargo xtask setup`"
    );
    let app = AppUnderTest::start(bin, StoreKind::Sqlite).await;
    let output = tokio::process::Command::new("node")
        .arg(dir.join("signup-flow.mjs"))
        .arg(app.base_url())
        .env("SCREENSHOT_DIR", std::env::temp_dir())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser flow failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    app.finish().await;
}
