//! Second factors: TOTP enrolment, the second step of sign-in (TOTP and recovery codes),
//! replays, step-up re-authentication, and an organization's MFA policy. TOTP codes are
//! computed by the suite's own RFC 6238 implementation ([`crate::totp`]).

use std::time::Duration;

use serde_json::{Value, json};

use super::orgs::join;
use crate::flows::{self, Account, PASSWORD};
use crate::{AppUnderTest, Reply, SessionCookie, check, totp};

/// The pending sign-in cookie's name on the suite's http origin.
const MFA_COOKIE: &str = "authkit_mfa";

/// An enrolled TOTP factor: its secret and the recovery codes of its confirmation.
struct Enrolled {
    secret: String,
    recovery_codes: Vec<String>,
}

/// Enrols TOTP for `cookie`'s user: begin, check the shape, confirm with the current code.
async fn enrol_totp(app: &AppUnderTest, cookie: &SessionCookie) -> Enrolled {
    let begun = app
        .client()
        .post_with("/auth/mfa/totp", cookie)
        .await
        .json_with(200);
    check::exact_keys(
        &begun,
        &["secret", "otpauth_url", "qr_svg"],
        "a TOTP enrolment",
    );
    let secret = begun["secret"].as_str().expect("a secret").to_owned();
    let confirmed = app
        .client()
        .post_json_with(
            "/auth/mfa/totp/confirm",
            &json!({"code": totp::code(&secret, 0)}),
            cookie,
        )
        .await
        .json_with(200);
    Enrolled {
        secret,
        recovery_codes: codes_of(&confirmed),
    }
}

fn codes_of(body: &Value) -> Vec<String> {
    check::exact_keys(body, &["recovery_codes"], "recovery codes");
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("recovery_codes is an array: {body}"))
        .iter()
        .map(|c| c.as_str().expect("a code is a string").to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes: {body}");
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "the codes differ: {body}");
    codes
}

/// The value of the pending sign-in cookie `reply` sets.
fn pending_cookie(reply: &Reply) -> String {
    reply
        .set_cookies()
        .into_iter()
        .find(|c| c.name() == MFA_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("a pending sign-in cookie is set: {:?}", reply.set_cookies()))
}

/// Signs in with the password; asserts the answer asks for the second factor and sets no
/// session; returns the pending sign-in cookie.
async fn first_factor(app: &AppUnderTest, email: &str) -> String {
    let reply = flows::try_sign_in(app, email, PASSWORD).await;
    let body = reply.json_with(200);
    assert_eq!(body["mfa_required"], true, "{body}");
    let methods = body["methods"].as_array().expect("methods");
    assert!(methods.contains(&json!("totp")), "{body}");
    assert!(methods.contains(&json!("recovery_code")), "{body}");
    assert!(
        reply
            .session_set_cookie()
            .is_none_or(|c| c.value().is_empty()),
        "no session before the second factor: {:?}",
        reply.set_cookies()
    );
    pending_cookie(&reply)
}

/// `POST /auth/mfa/verify` with the pending cookie `pending` (if any) and `body`.
async fn verify(app: &AppUnderTest, pending: Option<&str>, body: &Value) -> Reply {
    let mut request = app
        .client()
        .post("/auth/mfa/verify")
        .app_origin()
        .json(body);
    if let Some(pending) = pending {
        request = request.header("cookie", &format!("{MFA_COOKIE}={pending}"));
    }
    request.send().await
}

/// `POST /auth/mfa/totp` answers the secret, its `otpauth://` URI and an SVG QR code; the
/// factor counts only once a first code confirms it (a wrong one is 400 `invalid_code`), and the
/// confirmation answers ten recovery codes. A second enrolment while one is on is 409.
pub async fn totp_enrolment_is_confirmed_by_a_first_code(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let status = |body: Value| (body["totp"].clone(), body["recovery_codes_left"].clone());
    let begun = app
        .client()
        .post_with("/auth/mfa/totp", &account.cookie)
        .await
        .json_with(200);
    let secret = begun["secret"].as_str().expect("a secret");
    assert!(
        totp::base32_decode(secret).len() >= 20,
        "a 160-bit secret: {begun}"
    );
    let url = begun["otpauth_url"].as_str().expect("a URI");
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    assert!(url.contains(&format!("secret={secret}")), "{url}");
    assert!(
        url.contains("ada%40example.com") || url.contains("ada@example.com"),
        "{url}"
    );
    assert!(
        begun["qr_svg"].as_str().expect("svg").contains("<svg"),
        "{begun}"
    );
    let before = app
        .client()
        .get_with("/auth/mfa", &account.cookie)
        .await
        .json_with(200);
    assert_eq!(status(before), (json!(false), json!(0)), "not a factor yet");
    // Not a factor yet: sign-in needs no second step.
    flows::sign_in(app, "ada@example.com", PASSWORD).await;

    let wrong = totp::code(secret, 5);
    app.client()
        .post_json_with(
            "/auth/mfa/totp/confirm",
            &json!({"code": wrong}),
            &account.cookie,
        )
        .await
        .problem(400, "invalid_code");
    for junk in ["", "12345", "abcdef", "1234567"] {
        app.client()
            .post_json_with(
                "/auth/mfa/totp/confirm",
                &json!({"code": junk}),
                &account.cookie,
            )
            .await
            .problem(400, "invalid_code");
    }
    let confirmed = app
        .client()
        .post_json_with(
            "/auth/mfa/totp/confirm",
            &json!({"code": totp::code(secret, 0)}),
            &account.cookie,
        )
        .await
        .json_with(200);
    codes_of(&confirmed);
    let after = app
        .client()
        .get_with("/auth/mfa", &account.cookie)
        .await
        .json_with(200);
    assert_eq!(status(after.clone()), (json!(true), json!(10)), "{after}");
    assert_eq!(
        after["methods"],
        json!(["totp", "recovery_code"]),
        "{after}"
    );
    app.client()
        .post_with("/auth/mfa/totp", &account.cookie)
        .await
        .problem(409, "conflict");
    // The change is in the user's security events, and mailed.
    let events = app
        .client()
        .get_with(
            "/auth/security-events?kind=mfa.totp_enabled",
            &account.cookie,
        )
        .await
        .json_with(200);
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
    app.latest_mail_matching("ada@example.com", |m| {
        m.subject.contains("second factor was added")
    })
    .await;
}

/// With TOTP on, the password alone yields no session: `{mfa_required, methods}` and a
/// pending sign-in cookie. `POST /auth/mfa/verify` then needs that cookie (401 without), refuses
/// a wrong code (400 `invalid_code`) and accepts the right one (the next step's: one step of
/// skew) with a new session. The pending sign-in is single use, and a code is single use: the
/// code the enrolment used, the same code on a new sign-in and an older step's are refused
/// (replays).
pub async fn sign_in_with_totp_needs_the_second_step_and_refuses_replays(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let enrolled = enrol_totp(app, &account.cookie).await;

    let pending = first_factor(app, "ada@example.com").await;
    // The enrolment used this step's code: the next step's is the first one left (one step of
    // skew lets it through now).
    let code = totp::code(&enrolled.secret, 1);
    verify(app, None, &json!({"code": code}))
        .await
        .problem(401, "unauthenticated");
    verify(app, Some("x".repeat(43).as_str()), &json!({"code": code}))
        .await
        .problem(401, "unauthenticated");
    verify(
        app,
        Some(&pending),
        &json!({"code": totp::code(&enrolled.secret, 7)}),
    )
    .await
    .problem(400, "invalid_code");
    verify(
        app,
        Some(&pending),
        &json!({"code": code, "recovery_code": "x"}),
    )
    .await
    .problem(400, "invalid_request");
    // This step's code was used by the enrolment: a replay.
    verify(
        app,
        Some(&pending),
        &json!({"code": totp::code(&enrolled.secret, 0)}),
    )
    .await
    .problem(400, "invalid_code");

    let reply = verify(app, Some(&pending), &json!({"code": code})).await;
    let body = reply.json_with(200);
    assert_eq!(body["user"]["email"], "ada@example.com", "{body}");
    let cookie = reply.session_cookie();
    let session = flows::session(app, &cookie).await;
    assert_eq!(session["mfa"]["enabled"], true, "{session}");
    // The pending sign-in is over.
    verify(app, Some(&pending), &json!({"code": code}))
        .await
        .problem(401, "unauthenticated");

    // The same code again, on a new sign-in: a replay; and so is an older step's.
    let again = first_factor(app, "ada@example.com").await;
    for offset in [1, 0, -1] {
        verify(
            app,
            Some(&again),
            &json!({"code": totp::code(&enrolled.secret, offset)}),
        )
        .await
        .problem(400, "invalid_code");
    }
    // A recovery code still completes it.
    verify(
        app,
        Some(&again),
        &json!({"recovery_code": enrolled.recovery_codes[0]}),
    )
    .await
    .expect(200);
}

/// A recovery code completes a sign-in once (a second use is 400 `invalid_code`), its use is
/// mailed; a new set (`POST /auth/mfa/recovery-codes`) voids the old one.
pub async fn recovery_codes_work_once_and_a_new_set_voids_the_old(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let enrolled = enrol_totp(app, &account.cookie).await;
    let first = &enrolled.recovery_codes[0];

    let pending = first_factor(app, "ada@example.com").await;
    // Typed loosely: upper case, spaces for dashes.
    let typed = first.to_uppercase().replace('-', " ");
    let reply = verify(app, Some(&pending), &json!({"recovery_code": typed})).await;
    let cookie = reply.expect(200).session_cookie();
    app.latest_mail_matching("ada@example.com", |m| m.subject.contains("recovery code"))
        .await;
    let pending = first_factor(app, "ada@example.com").await;
    verify(app, Some(&pending), &json!({"recovery_code": first}))
        .await
        .problem(400, "invalid_code");
    let status = app
        .client()
        .get_with("/auth/mfa", &cookie)
        .await
        .json_with(200);
    assert_eq!(status["recovery_codes_left"], 9, "{status}");

    let renewed = app
        .client()
        .post_with("/auth/mfa/recovery-codes", &cookie)
        .await
        .json_with(200);
    let new_codes = codes_of(&renewed);
    verify(
        app,
        Some(&pending),
        &json!({"recovery_code": enrolled.recovery_codes[1]}),
    )
    .await
    .problem(400, "invalid_code");
    verify(app, Some(&pending), &json!({"recovery_code": new_codes[0]}))
        .await
        .expect(200);
}

/// Step-up: with `AUTH_STEP_UP_MAX_AGE_SECS=2`, a session older than that gets 403
/// `reauthentication_required` on the sensitive routes (second factors, password change, API
/// tokens, deleting an organization); `POST /auth/reauthenticate` with the password (a wrong
/// one is 401) or a TOTP code opens them again.
pub async fn step_up_routes_need_a_recent_authentication(app: &AppUnderTest) {
    let app = app
        .sibling_with(&[("AUTH_STEP_UP_MAX_AGE_SECS", "2")])
        .await;
    let app = &app;
    let account = flows::sign_up(app, "ada@example.com").await;
    let org = flows::create_org(app, &account.cookie, "Acme").await;
    let org_id = org["id"].as_str().expect("an org id").to_owned();
    let cookie = &account.cookie;
    let session = flows::session(app, cookie).await;
    check::utc_time(&session["session"]["authenticated_at"], "authenticated_at");
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let client = app.client();
    let refused = [
        client.post_with("/auth/mfa/totp", cookie).await,
        client
            .post_json_with(
                "/auth/change-password",
                &json!({"current_password": PASSWORD, "new_password": flows::NEW_PASSWORD}),
                cookie,
            )
            .await,
        client
            .post_json_with(
                "/api/tokens",
                &json!({"name": "ci", "scopes": ["read:projects"]}),
                cookie,
            )
            .await,
        client.delete_with(&format!("/orgs/{org_id}"), cookie).await,
    ];
    for reply in refused {
        reply.problem(403, "reauthentication_required");
    }
    // Ordinary routes are not affected.
    flows::session(app, cookie).await;

    app.client()
        .post_json_with(
            "/auth/reauthenticate",
            &json!({"password": "not it at all"}),
            cookie,
        )
        .await
        .problem(401, "invalid_credentials");
    let reauthenticated = app
        .client()
        .post_json_with(
            "/auth/reauthenticate",
            &json!({"password": PASSWORD}),
            cookie,
        )
        .await
        .json_with(200);
    check::exact_keys(
        &reauthenticated,
        &["authenticated_at"],
        "a re-authentication",
    );
    let enrolled = enrol_totp(app, cookie).await;

    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.client()
        .request(crate::Method::DELETE, "/auth/mfa/totp")
        .app_origin()
        .cookie(cookie)
        .send()
        .await
        .problem(403, "reauthentication_required");
    app.client()
        .post_json_with(
            "/auth/reauthenticate",
            &json!({"code": totp::code(&enrolled.secret, 1)}),
            cookie,
        )
        .await
        .expect(200);
    app.client()
        .request(crate::Method::DELETE, "/auth/mfa/totp")
        .app_origin()
        .cookie(cookie)
        .send()
        .await
        .expect(204);
    // Without a factor, the password alone signs in again.
    flows::sign_in(app, "ada@example.com", PASSWORD).await;
    let events = app
        .client()
        .get_with("/auth/security-events?kind=session.reauthenticated", cookie)
        .await
        .json_with(200);
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(2),
        "{events}"
    );
}

/// An organization's MFA policy: turning it on needs a factor of the admin's own (403
/// `mfa_required`); once on, a member without a factor keeps their session but every route of
/// the organization answers 403 `mfa_required` (the library's and the app's), `GET
/// /auth/session` says why, and the admin sees who has a factor. Setting one up restores access.
pub async fn org_mfa_policy_holds_back_members_without_a_factor(app: &AppUnderTest) {
    let owner = flows::sign_up(app, "owner@example.com").await;
    let org = flows::create_org(app, &owner.cookie, "Acme").await;
    let org_id = org["id"].as_str().expect("an org id").to_owned();
    let member: Account = join(app, &org_id, &owner.cookie, "member@example.com", "member").await;
    let policy = |required: bool| {
        app.client()
            .request(crate::Method::PUT, &format!("/orgs/{org_id}/mfa-policy"))
            .app_origin()
            .cookie(&owner.cookie)
            .json(&json!({"required": required}))
            .send()
    };
    policy(true).await.problem(403, "mfa_required");
    enrol_totp(app, &owner.cookie).await;
    let on = policy(true).await.json_with(200);
    assert_eq!(on, json!({"org_id": org_id, "mfa_required": true}), "{on}");
    // A member may not change it.
    app.client()
        .request(crate::Method::PUT, &format!("/orgs/{org_id}/mfa-policy"))
        .app_origin()
        .cookie(&member.cookie)
        .json(&json!({"required": false}))
        .send()
        .await
        .problem(403, "mfa_required");

    let members = app
        .client()
        .get_with(&format!("/orgs/{org_id}/members"), &owner.cookie)
        .await
        .json_with(200);
    let has_factor = |email: &str| {
        members
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["email"] == email)
            .map(|m| m["mfa_enabled"].clone())
    };
    assert_eq!(
        has_factor("owner@example.com"),
        Some(json!(true)),
        "{members}"
    );
    assert_eq!(
        has_factor("member@example.com"),
        Some(json!(false)),
        "{members}"
    );

    // The member: signed in, but held back in the organization.
    let session = flows::session(app, &member.cookie).await;
    assert_eq!(session["mfa"]["org_blocked"], true, "{session}");
    assert_eq!(session["permissions"], json!([]), "{session}");
    app.client()
        .get_with(&format!("/orgs/{org_id}/members"), &member.cookie)
        .await
        .problem(403, "mfa_required");
    app.client()
        .get_with("/api/projects", &member.cookie)
        .await
        .problem(403, "mfa_required");

    enrol_totp(app, &member.cookie).await;
    let session = flows::session(app, &member.cookie).await;
    assert_eq!(session["mfa"]["org_blocked"], false, "{session}");
    app.client()
        .get_with("/api/projects", &member.cookie)
        .await
        .expect(200);
    app.client()
        .get_with(&format!("/orgs/{org_id}/members"), &member.cookie)
        .await
        .expect(200);
    let events = app
        .client()
        .get_with(
            &format!("/orgs/{org_id}/audit?kind=org.mfa_policy_changed"),
            &owner.cookie,
        )
        .await
        .json_with(200);
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
}

/// Second-factor attempts are limited per user like passwords: after ten wrong codes even
/// the right one is refused with 429 for a while.
pub async fn second_factor_attempts_are_rate_limited_per_user(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let enrolled = enrol_totp(app, &account.cookie).await;
    let pending = first_factor(app, "ada@example.com").await;
    for _ in 0..10 {
        verify(app, Some(&pending), &json!({"code": "000000"}))
            .await
            .problem(400, "invalid_code");
    }
    // The next step's code would be accepted (the enrolment used this step's): refused too.
    let reply = verify(
        app,
        Some(&pending),
        &json!({"code": totp::code(&enrolled.secret, 1)}),
    )
    .await;
    reply.problem(429, "rate_limited");
    assert!(reply.header("retry-after").is_some(), "Retry-After is set");
}

/// A provider sign-in is a first factor too: for a user with TOTP the callback creates no
/// session but sends the browser to the sign-in page's second step (`?mfa=required&next=…`)
/// holding a pending sign-in cookie, which `POST /auth/mfa/verify` completes.
pub async fn provider_sign_in_of_a_user_with_a_factor_waits_for_it(app: &AppUnderTest) {
    use crate::provider::{self, Browser};
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let first = Browser::new()
        .sign_in_with(app, "google", "grace@example.com", None)
        .await;
    assert_eq!(first.status, 302, "{first}");
    let enrolled = enrol_totp(app, &first.session_cookie()).await;

    let reply = Browser::new()
        .sign_in_with(
            app,
            "google",
            "grace@example.com",
            Some("/dashboard/tokens"),
        )
        .await;
    assert_eq!(reply.status, 302, "{reply}");
    let location = reply.header("location").expect("a Location");
    assert!(
        location.starts_with("/sign-in?mfa=required&next=") && location.contains("tokens"),
        "{location}"
    );
    assert!(
        reply
            .session_set_cookie()
            .is_none_or(|c| c.value().is_empty()),
        "no session before the second factor: {reply}"
    );
    let pending = pending_cookie(&reply);
    // The enrolment used this step's code; the next step's is within the skew.
    let done = verify(
        app,
        Some(&pending),
        &json!({"code": totp::code(&enrolled.secret, 1)}),
    )
    .await;
    let body = done.json_with(200);
    assert_eq!(body["user"]["email"], "grace@example.com", "{body}");
    let session = flows::session(app, &done.session_cookie()).await;
    assert_eq!(session["user"]["email"], "grace@example.com", "{session}");
}
