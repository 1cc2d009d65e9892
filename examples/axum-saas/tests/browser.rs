//! The browser test (`contract_suite::browser`): sign up, land on the dashboard, sign out, get
//! sent to sign-in when opening `/dashboard`, sign in again, in headless Chromium.
//! `cargo xtask test` installs Chromium and playwright-core; run `cargo xtask setup` once
//! before running this alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_dashboard_sign_out_and_redirect_in_chromium() {
    contract_suite::browser::run_signup_flow(env!("CARGO_BIN_EXE_axum-saas")).await;
}
