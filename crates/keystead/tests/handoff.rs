//! Hand-off from the old provider (keystead::handoff) against a stand-in issuer shaped like
//! Clerk: its keys are the test-only keys in tests/data (never used anywhere else), its JWKS is
//! made from them, and its session tokens carry Clerk's claims (`sub`, `sid`, `iss`, `azp`,
//! `exp`, `iat`, `nbf`). The store is a real SQLite store on a temporary file; the clock is a
//! `ManualClock`.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, Method, header};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keystead::handoff::SessionHandoff;
use keystead::mail::MemoryMailer;
use keystead::web::AppOrigin;
use keystead::{
    AuditQuery, Auth, AuthStore, Authentication, Clock, Credential, Email, ErrorCode, ManualClock,
    NewUser, User, UserId,
};
use keystead_sqlite::SqliteStore;
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const APP: &str = "http://app.test";
const ISSUER: &str = "https://clerk.app.test";
const FRONTEND: &str = "http://app.test";
const RSA_KID: &str = "ins_rsa_test";
const EC_KID: &str = "ins_ec_test";
const EXTERNAL_ID: &str = "user_2NNEqL2nrIRdJ194ndJqAHwEfxC";

/// Test-only RSA key (PKCS#1) of the stand-in issuer.
const RSA_PEM: &str = include_str!("data/handoff-rsa.pem");
/// Its public key (SPKI), the "secret" of the algorithm-confusion attempt.
const RSA_PUBLIC_PEM: &str = include_str!("data/handoff-rsa.pub.pem");
/// Test-only P-256 key (PKCS#8) of the stand-in issuer.
const EC_PEM: &str = include_str!("data/handoff-ec.pem");

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("test PEM is base64")
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_der(&der(RSA_PEM))
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_der(&der(EC_PEM))
}

/// The stand-in issuer's JWKS: its RSA and EC public keys, as Clerk publishes them.
fn jwks() -> JwkSet {
    let mut rsa = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).unwrap();
    rsa.common.key_id = Some(RSA_KID.to_owned());
    let mut ec = Jwk::from_encoding_key(&ec_key(), Algorithm::ES256).unwrap();
    ec.common.key_id = Some(EC_KID.to_owned());
    JwkSet {
        keys: vec![rsa, ec],
    }
}

const START: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const UNTIL: OffsetDateTime = datetime!(2026-04-01 00:00 UTC);

struct Harness {
    auth: Auth,
    store: Arc<dyn AuthStore>,
    clock: Arc<ManualClock>,
    user: User,
    _dir: tempfile::TempDir,
}

async fn harness_with(handoff: Option<SessionHandoff>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AuthStore> =
        Arc::new(SqliteStore::open(dir.path().join("auth.db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(START));
    let mut builder = Auth::builder(store.clone(), AppOrigin::parse(APP).unwrap())
        .clock(clock.clone())
        .mailer(Arc::new(MemoryMailer::default()));
    if let Some(handoff) = handoff {
        builder = builder.session_handoff(handoff);
    }
    let auth = builder.build();
    let user = import(&store, "ada@example.com", EXTERNAL_ID).await;
    Harness {
        auth,
        store,
        clock,
        user,
        _dir: dir,
    }
}

async fn harness() -> Harness {
    harness_with(Some(SessionHandoff::new(
        ISSUER,
        jwks(),
        vec![FRONTEND.to_owned()],
        UNTIL,
    )))
    .await
}

/// A user as `authctl` imports one from Clerk: Clerk's id kept as the external id.
async fn import(store: &Arc<dyn AuthStore>, email: &str, external_id: &str) -> User {
    let new = NewUser {
        user: User {
            id: UserId::new(),
            email: Email::parse(email).unwrap(),
            name: None,
            email_verified_at: Some(START - Duration::days(100)),
            created_at: START - Duration::days(100),
            external_id: Some(external_id.to_owned()),
            disabled_at: None,
        },
        password_hash: None,
    };
    store.import_user(&new, &[]).await.unwrap()
}

/// Clerk's session token claims, one minute long, issued now.
fn claims(now: OffsetDateTime, sid: &str) -> Value {
    let now = now.unix_timestamp();
    json!({
        "azp": FRONTEND,
        "exp": now + 60,
        "iat": now,
        "iss": ISSUER,
        "nbf": now - 10,
        "sid": sid,
        "sub": EXTERNAL_ID,
    })
}

fn sign(claims: &Value, alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(claims, Algorithm::RS256, RSA_KID, &rsa_key())
}

fn headers(cookie: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
    headers
}

fn old_cookie(token: &str) -> HeaderMap {
    headers(&format!("theme=dark; __session={token}"))
}

/// Anonymous, as for a request without any credential: no principal, no failure, no cookie.
fn assert_anonymous(authn: &Authentication, what: &str) {
    assert!(authn.principal.is_none(), "{what}: signed in");
    assert!(authn.failure.is_none(), "{what}: {:?}", authn.failure);
    assert!(authn.set_cookie.is_none(), "{what}: {:?}", authn.set_cookie);
}

async fn handoff_events(h: &Harness) -> Vec<keystead::AuditEvent> {
    h.store
        .audit_events(&AuditQuery {
            kind: Some("session.handoff".to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

async fn live_sessions(h: &Harness) -> usize {
    h.store
        .sessions_for_user(h.user.id, h.clock.now())
        .await
        .unwrap()
        .len()
}

/// Our session token in a `Set-Cookie` value.
fn our_token(set_cookie: &HeaderValue) -> String {
    let value = set_cookie.to_str().unwrap();
    let pair = value.split(';').next().unwrap();
    let (name, token) = pair.split_once('=').unwrap();
    assert_eq!(name, "authkit_session", "{value}");
    token.to_owned()
}

#[tokio::test]
async fn an_old_session_is_swapped_for_ours_and_audited() {
    let h = harness().await;
    let request = old_cookie(&rs256(&claims(h.clock.now(), "sess_2abc")));
    assert!(
        h.auth.authenticate_cached(&request).is_none(),
        "the swap needs the store"
    );
    let authn = h.auth.authenticate(&request).await;
    let principal = authn
        .principal
        .as_ref()
        .expect("signed in as the imported user");
    assert_eq!(principal.user.id, h.user.id);
    assert!(authn.failure.is_none());
    let Credential::Session { id: session_id, .. } = principal.credential else {
        panic!("a session credential: {:?}", principal.credential);
    };
    let set_cookie = authn.set_cookie.as_ref().expect("our session cookie");
    assert!(
        set_cookie.to_str().unwrap().contains("HttpOnly"),
        "{set_cookie:?}"
    );

    // The next request carries only our cookie.
    let next = headers(&format!("authkit_session={}", our_token(set_cookie)));
    let again = h.auth.authenticate(&next).await;
    assert_eq!(again.principal.expect("still signed in").user.id, h.user.id);

    let events = handoff_events(&h).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].user_id, Some(h.user.id));
    assert_eq!(
        events[0].data,
        json!({ "issuer": ISSUER, "sid": "sess_2abc", "session_id": session_id.to_string() })
    );
}

#[tokio::test]
async fn an_es256_session_token_is_swapped_too() {
    let h = harness().await;
    let token = sign(
        &claims(h.clock.now(), "sess_ec"),
        Algorithm::ES256,
        EC_KID,
        &ec_key(),
    );
    let authn = h.auth.authenticate(&old_cookie(&token)).await;
    assert_eq!(authn.principal.expect("signed in").user.id, h.user.id);
}

#[tokio::test]
async fn an_old_session_is_swapped_once() {
    let h = harness().await;
    let token = rs256(&claims(h.clock.now(), "sess_once"));
    let first = h.auth.authenticate(&old_cookie(&token)).await;
    assert!(first.principal.is_some());
    // The same token replayed (or stolen), and a fresh token of the same old session.
    let replayed = h.auth.authenticate(&old_cookie(&token)).await;
    assert_anonymous(&replayed, "replayed");
    h.clock.advance(Duration::seconds(50));
    let refreshed = rs256(&claims(h.clock.now(), "sess_once"));
    assert_anonymous(
        &h.auth.authenticate(&old_cookie(&refreshed)).await,
        "same sid",
    );
    assert_eq!(live_sessions(&h).await, 1);
    assert_eq!(handoff_events(&h).await.len(), 1);
}

#[tokio::test]
async fn outside_the_window_the_old_cookie_is_ignored() {
    let h = harness().await;
    h.clock.set(UNTIL);
    let token = rs256(&claims(h.clock.now(), "sess_late"));
    let request = old_cookie(&token);
    let cached = h
        .auth
        .authenticate_cached(&request)
        .expect("answered without the store");
    assert_anonymous(&cached, "window closed (cached)");
    assert_anonymous(&h.auth.authenticate(&request).await, "window closed");
    assert_eq!(live_sessions(&h).await, 0);
    assert!(handoff_events(&h).await.is_empty());

    // Nothing was claimed: inside the window the same old session still swaps.
    h.clock.set(UNTIL - Duration::seconds(10));
    assert!(h.auth.authenticate(&request).await.principal.is_some());

    // Before `not_before` it is ignored too.
    let h = harness_with(Some(
        SessionHandoff::new(ISSUER, jwks(), vec![], UNTIL).not_before(START + Duration::hours(1)),
    ))
    .await;
    let early = old_cookie(&rs256(&claims(h.clock.now(), "sess_early")));
    assert_anonymous(&h.auth.authenticate(&early).await, "window not open yet");
    assert_eq!(live_sessions(&h).await, 0);
}

#[tokio::test]
async fn forged_or_foreign_tokens_are_anonymous() {
    let h = harness().await;
    let now = h.clock.now();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(now, "sess_forged");
        change(&mut c);
        c
    };
    let public_pem = RSA_PUBLIC_PEM.as_bytes();
    let none_token = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims(now, "sess_forged").to_string());
        format!("{header}.{body}.")
    };
    let other_rsa_signed = {
        // Signed with the EC key but labelled as the RSA key's.
        sign(
            &claims(now, "sess_forged"),
            Algorithm::ES256,
            RSA_KID,
            &ec_key(),
        )
    };
    let tampered = {
        let token = rs256(&claims(now, "sess_forged"));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut c = claims(now, "sess_forged");
        c["sub"] = json!("user_someone_else");
        parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
        parts.join(".")
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong issuer",
            rs256(&with(&|c| c["iss"] = json!("https://clerk.evil.test"))),
        ),
        (
            "no issuer",
            rs256(&with(&|c| drop(c.as_object_mut().unwrap().remove("iss")))),
        ),
        (
            "wrong azp",
            rs256(&with(&|c| c["azp"] = json!("https://evil.test"))),
        ),
        (
            "no azp",
            rs256(&with(&|c| drop(c.as_object_mut().unwrap().remove("azp")))),
        ),
        (
            "expired",
            rs256(&with(&|c| c["exp"] = json!(now.unix_timestamp() - 6))),
        ),
        (
            "no exp",
            rs256(&with(&|c| drop(c.as_object_mut().unwrap().remove("exp")))),
        ),
        (
            "not yet valid",
            rs256(&with(&|c| c["nbf"] = json!(now.unix_timestamp() + 60))),
        ),
        (
            "no sid",
            rs256(&with(&|c| drop(c.as_object_mut().unwrap().remove("sid")))),
        ),
        (
            "no sub",
            rs256(&with(&|c| drop(c.as_object_mut().unwrap().remove("sub")))),
        ),
        (
            "HS256 with the public key as secret",
            sign(
                &claims(now, "sess_forged"),
                Algorithm::HS256,
                RSA_KID,
                &EncodingKey::from_secret(public_pem),
            ),
        ),
        (
            "HS256 with the public key's DER as secret",
            sign(
                &claims(now, "sess_forged"),
                Algorithm::HS256,
                RSA_KID,
                &EncodingKey::from_secret(&der(RSA_PUBLIC_PEM)),
            ),
        ),
        (
            "RS384",
            sign(
                &claims(now, "sess_forged"),
                Algorithm::RS384,
                RSA_KID,
                &rsa_key(),
            ),
        ),
        (
            "unknown kid",
            sign(
                &claims(now, "sess_forged"),
                Algorithm::RS256,
                "ins_unknown",
                &rsa_key(),
            ),
        ),
        ("alg none", none_token),
        ("ES256 under the RSA key's kid", other_rsa_signed),
        ("tampered claims", tampered),
        ("not a JWT", "eyJhbGciOi.junk".to_owned()),
    ];
    for (what, token) in &cases {
        let authn = h.auth.authenticate(&old_cookie(token)).await;
        assert_anonymous(&authn, what);
    }
    assert_eq!(live_sessions(&h).await, 0);
    assert!(handoff_events(&h).await.is_empty());

    // Within the 5 s leeway an expired token still holds, and nothing above spent its sid.
    let lenient = rs256(&with(&|c| c["exp"] = json!(now.unix_timestamp() - 4)));
    assert!(
        h.auth
            .authenticate(&old_cookie(&lenient))
            .await
            .principal
            .is_some()
    );
}

#[tokio::test]
async fn an_unknown_subject_is_anonymous() {
    let h = harness().await;
    let mut c = claims(h.clock.now(), "sess_stranger");
    c["sub"] = json!("user_not_imported");
    assert_anonymous(
        &h.auth.authenticate(&old_cookie(&rs256(&c))).await,
        "unknown sub",
    );
    assert!(handoff_events(&h).await.is_empty());
}

#[tokio::test]
async fn a_disabled_user_is_anonymous() {
    let h = harness().await;
    h.store
        .set_user_disabled(h.user.id, Some(h.clock.now()))
        .await
        .unwrap();
    let token = rs256(&claims(h.clock.now(), "sess_disabled"));
    assert_anonymous(&h.auth.authenticate(&old_cookie(&token)).await, "disabled");
    assert_eq!(live_sessions(&h).await, 0);
    assert!(handoff_events(&h).await.is_empty());
}

#[tokio::test]
async fn a_cross_site_post_with_the_old_cookie_is_rejected() {
    let h = harness().await;
    let token = rs256(&claims(h.clock.now(), "sess_csrf"));
    let mut cross = old_cookie(&token);
    cross.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.test"),
    );
    let err = h
        .auth
        .check_csrf(&Method::POST, &cross, false)
        .expect_err("cross-site POST with the old cookie");
    assert_eq!(err.code, ErrorCode::CsrfRejected);
    // No provenance at all is refused too, as with our own cookie.
    assert!(
        h.auth
            .check_csrf(&Method::POST, &old_cookie(&token), false)
            .is_err()
    );
    // The app's own pages may post.
    let mut same = old_cookie(&token);
    same.insert(header::ORIGIN, HeaderValue::from_static(APP));
    h.auth.check_csrf(&Method::POST, &same, false).unwrap();

    // The cross-site request is not swapped either (its old session is not spent on it)...
    assert_anonymous(&h.auth.authenticate(&cross).await, "cross-site");
    // ...so the user's own next request still is.
    assert!(h.auth.authenticate(&same).await.principal.is_some());

    // Without the hand-off, the cookie is nobody's business.
    let off = harness_with(None).await;
    off.auth.check_csrf(&Method::POST, &cross, false).unwrap();
}

#[tokio::test]
async fn the_hand_off_is_off_by_default() {
    let h = harness_with(None).await;
    let request = old_cookie(&rs256(&claims(h.clock.now(), "sess_off")));
    let cached = h
        .auth
        .authenticate_cached(&request)
        .expect("nothing to look up");
    assert_anonymous(&cached, "off (cached)");
    assert_anonymous(&h.auth.authenticate(&request).await, "off");
    assert_eq!(live_sessions(&h).await, 0);
}

#[tokio::test]
async fn our_session_wins_over_the_old_cookie() {
    let h = harness().await;
    let token = rs256(&claims(h.clock.now(), "sess_both"));
    let first = h.auth.authenticate(&old_cookie(&token)).await;
    let ours = our_token(first.set_cookie.as_ref().unwrap());
    // The browser keeps both cookies; ours is used, nothing is swapped again.
    let both = headers(&format!("__session={token}; authkit_session={ours}"));
    let authn = h.auth.authenticate(&both).await;
    assert_eq!(authn.principal.unwrap().user.id, h.user.id);
    assert_eq!(live_sessions(&h).await, 1);
}
