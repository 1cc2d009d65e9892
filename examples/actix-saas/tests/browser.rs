//! The browser tests (`contract_suite::browser`), in headless Chromium: sign up, land on the
//! dashboard, sign out, get sent to sign-in when opening `/dashboard`, sign in again; and the
//! second factors (passkey and TOTP). `cargo xtask test` installs Chromium and
//! playwright-core; run `cargo xtask setup` once before running these alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_dashboard_sign_out_and_redirect_in_chromium() {
    contract_suite::browser::run_signup_flow(env!("CARGO_BIN_EXE_actix-saas")).await;
}

/// The second-factor flow (`contract_suite::browser::run_mfa_flow`): a passkey added with
/// Chromium's virtual authenticator and a passwordless sign-in with it, TOTP set up from the
/// secret the security page shows, and a password sign-in through the second step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_and_totp_second_factor_in_chromium() {
    contract_suite::browser::run_mfa_flow(env!("CARGO_BIN_EXE_actix-saas")).await;
}
