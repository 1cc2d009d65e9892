//! Health and readiness probes: `/healthz` (the process is up) and `/readyz` (it can answer
//! correctly), without any credential.

use crate::app::AppUnderTest;

/// `/healthz` is 200 `{status: "ok"}` and `/readyz` is 200 `{status: "ready"}` with every
/// check true, for a client without a cookie or token; neither sets a cookie.
pub async fn health_and_readiness_answer_without_a_credential(app: &AppUnderTest) {
    let client = app.client();
    let health = client.get("/healthz").send().await;
    let body = health.json_with(200);
    assert_eq!(body["status"], "ok", "{health}");
    assert!(health.set_cookies().is_empty(), "{health}");

    let ready = client.get("/readyz").send().await;
    let body = ready.json_with(200);
    assert_eq!(body["status"], "ready", "{ready}");
    for check in ["database", "change_feed", "signing_keys"] {
        assert_eq!(body["checks"][check], true, "{check}: {ready}");
    }
    assert!(ready.set_cookies().is_empty(), "{ready}");
}
