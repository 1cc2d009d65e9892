//! `GET /metrics` on the listener of `METRICS_BIND`: Prometheus's text format, whose counters
//! move with the traffic sent to the app.

use std::collections::BTreeMap;

use serde_json::json;

use crate::AppUnderTest;
use crate::flows;

/// The samples of a scrape: `name{labels}` → value (labels as the exporter printed them).
type Samples = BTreeMap<String, f64>;

async fn scrape(app: &AppUnderTest) -> Samples {
    let url = app
        .metrics_url()
        .expect("the app printed `metrics on http://ADDR` (METRICS_BIND)");
    let response = reqwest::get(&url)
        .await
        .expect("the metrics listener answers");
    assert_eq!(response.status(), 200, "GET {url}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("a text body");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value` lines");
            (
                series.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("a number: {line}")),
            )
        })
        .collect()
}

/// How much `series` grew between two scrapes (a series not yet printed counts as 0).
fn grew(before: &Samples, after: &Samples, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

/// The metrics listener is not the app's: `/metrics` on the public listener is 404. The
/// counters move by exactly the traffic sent: sign-ups and sign-ins by outcome, rate-limit
/// refusals by rule, API tokens by outcome, session cache lookups; the feed and hashing gauges
/// are there.
pub async fn metrics_count_the_traffic_sent(app: &AppUnderTest) {
    let public = app.client().get("/metrics").send().await;
    assert_eq!(public.status, 404, "{public}");

    let before = scrape(app).await;
    let account = flows::sign_up(app, "ada@example.com").await;
    flows::create_org(app, &account.cookie, "Acme").await;
    for _ in 0..2 {
        flows::try_sign_in(app, "ada@example.com", "not the right password")
            .await
            .problem(401, "invalid_credentials");
    }
    flows::sign_in(app, "ada@example.com", flows::PASSWORD).await;
    // Ten failures per email in 15 minutes: the eleventh attempt is refused before any
    // password work, the twelfth too.
    for _ in 0..10 {
        let _ = flows::try_sign_in(app, "grace@example.com", "not the right password").await;
    }
    for _ in 0..2 {
        flows::try_sign_in(app, "grace@example.com", "not the right password")
            .await
            .problem(429, "rate_limited");
    }
    let created = app
        .client()
        .post_json_with(
            "/api/tokens",
            &json!({"name": "ci", "scopes": ["read:projects"]}),
            &account.cookie,
        )
        .await
        .json_with(201);
    let token = created["token"].as_str().expect("a token");
    for _ in 0..3 {
        app.client()
            .get("/api/projects")
            .bearer(token)
            .send()
            .await
            .expect(200);
    }
    app.client()
        .get("/api/projects")
        .bearer("sk_live_not.a.token")
        .send()
        .await
        .unauthenticated("token_invalid");
    for _ in 0..4 {
        app.client()
            .get_with("/auth/session", &account.cookie)
            .await
            .expect(200);
    }
    let after = scrape(app).await;

    let exactly = [
        (r#"keystead_sign_ups_total{outcome="succeeded"}"#, 1.0),
        (
            r#"keystead_sign_ins_total{method="password",outcome="succeeded"}"#,
            1.0,
        ),
        (
            r#"keystead_sign_ins_total{method="password",outcome="invalid_credentials"}"#,
            12.0,
        ),
        (
            r#"keystead_sign_ins_total{method="password",outcome="rate_limited"}"#,
            2.0,
        ),
        (
            r#"keystead_rate_limit_refusals_total{rule="sign_in_email"}"#,
            2.0,
        ),
        (
            r#"keystead_token_verifications_total{outcome="valid"}"#,
            3.0,
        ),
        (
            r#"keystead_token_verifications_total{outcome="token_invalid"}"#,
            1.0,
        ),
    ];
    for (series, expected) in exactly {
        assert_eq!(
            grew(&before, &after, series),
            expected,
            "{series}: before {before:?}, after {after:?}"
        );
    }
    let session_lookups = grew(
        &before,
        &after,
        r#"keystead_cache_lookups_total{cache="sessions",result="hit"}"#,
    ) + grew(
        &before,
        &after,
        r#"keystead_cache_lookups_total{cache="sessions",result="miss"}"#,
    );
    assert!(
        session_lookups >= 4.0,
        "each cookie request looks the session up: {after:?}"
    );
    assert_eq!(
        after.get("keystead_change_feed_fresh"),
        Some(&1.0),
        "{after:?}"
    );
    for gauge in [
        "keystead_change_feed_lag_seconds",
        "keystead_password_hashes_in_flight",
        "keystead_password_hash_queue_depth",
    ] {
        assert!(after.contains_key(gauge), "{gauge}: {after:?}");
    }
}
