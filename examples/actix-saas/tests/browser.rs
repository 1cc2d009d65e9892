//! The browser test: headless Chromium (Debian's `chromium`) driven by Playwright
//! (`playwright-core` from npm) through `tests/browser/signup-flow.mjs` — sign up, land on the
//! dashboard, sign out, get sent to sign-in when opening `/dashboard`, sign in again.
//! `cargo xtask test` installs both; run `cargo xtask setup` once before running this alone.

use std::path::PathBuf;

use contract_suite::{AppUnderTest, StoreKind};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_dashboard_sign_out_and_redirect_in_chromium() {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run `cargo xtask setup`"
    );
    let app = AppUnderTest::start(env!("CARGO_BIN_EXE_actix-saas"), StoreKind::Sqlite).await;
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
