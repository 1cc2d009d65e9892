//! API tokens through the core ([`Auth::handle`] and [`Auth::authenticate`]) on each real store:
//! `POST`/`GET /api/tokens`, `DELETE /api/tokens/{id}`, `/.well-known/jwks.json`, and
//! `Authorization: Bearer sk_live_…` on the hot path — with the attacks on JWS verification
//! (`alg: none`, HS256 keyed with the public key, tampered claims, stripped signatures,
//! embedded `jwk`, `jku`, `kid` path traversal, ES256 zero signatures), claim checks proven
//! with tokens signed by our own key, revocation, removal and demotion of the owner, scope
//! validation, listing, usage recording, audit events and key rotation.
//!
//! Each case builds an [`Auth`] with tokens signed by a [`KeyRing`] of Ed25519 keys in a
//! temporary [`DirKeyStore`], with the same [`ManualClock`], [`MemoryMailer`] and cheap password
//! hashes as the other HTTP cases.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey};
use keystead::mail::MemoryMailer;
use keystead::tokens::{Change, DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::web::AppOrigin;
use keystead::{
    AuditEvent, AuditQuery, Auth, AuthStore, Authentication, Clock, ErrorCode, ManualClock, OrgId,
    PasswordConfig, Principal, Role, UserId,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::http_routes::{
    App, ORIGIN, Req, assert_keys, assert_problem, assert_status, json_of, time_of,
};
use crate::fixtures;

const PREFIX: &str = "sk_live_";
/// The permissions of each role, as the contract lists them.
const MEMBER_PERMISSIONS: &[&str] = &[
    "read:projects",
    "write:projects",
    "read:deployments",
    "write:deployments",
    "members:read",
    "tokens:create",
];
const ALL_PERMISSIONS: &[&str] = &[
    "read:projects",
    "write:projects",
    "read:deployments",
    "write:deployments",
    "members:read",
    "tokens:create",
    "members:manage",
    "tokens:manage",
    "audit:read",
    "billing:manage",
    "org:delete",
];

/// The app with API tokens on, and the directory of its signing keys.
pub(super) struct TokenApp {
    pub(super) app: App,
    pub(super) keys_dir: tempfile::TempDir,
}

pub(super) async fn token_app(store: &Arc<dyn AuthStore>) -> TokenApp {
    token_app_with(store, TokenConfig::default()).await
}

/// [`token_app`] with its own token settings.
async fn token_app_with(store: &Arc<dyn AuthStore>, config: TokenConfig) -> TokenApp {
    let clock = Arc::new(ManualClock::starting_now());
    let mailer = MemoryMailer::default();
    let keys_dir = tempfile::tempdir().expect("a temp dir");
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(keys_dir.path()).expect("a key store")),
        clock.clone(),
        KeyAlgorithm::EdDSA,
        Duration::days(365),
    )
    .await
    .expect("a key ring");
    let auth = Auth::builder(
        store.clone(),
        AppOrigin::parse(ORIGIN).expect("a valid origin"),
    )
    .clock(clock.clone())
    .mailer(Arc::new(mailer.clone()))
    .password_hashing(
        PasswordConfig::new()
            .argon2_params(8, 1, 1)
            .expect("valid argon2 params"),
    )
    .api_tokens(keys, config)
    .build();
    TokenApp {
        app: App {
            store: store.clone(),
            clock,
            mailer,
            auth,
        },
        keys_dir,
    }
}

/// A signed-up user with a session.
pub(super) struct Person {
    pub(super) id: UserId,
    pub(super) cookie: String,
}

pub(super) async fn person(app: &App, email: &str) -> Person {
    let (id, cookie) = app.sign_up(email).await;
    Person {
        id: id.parse().expect("a user id"),
        cookie,
    }
}

/// `POST /orgs {name}` by `owner`: the new org is the session's active one.
pub(super) async fn create_org(app: &App, owner: &Person, name: &str) -> OrgId {
    let response = app
        .send(
            Req::post("/orgs")
                .cookie(&owner.cookie)
                .json(&json!({ "name": name })),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
    json_of(&response)["id"]
        .as_str()
        .expect("an org id")
        .parse()
        .expect("an org id")
}

/// Adds `who` to `org` as `role` through the store and makes it their active org (through
/// the session manager: `POST /auth/active-org` would rotate the session, and these cases keep
/// one cookie per person).
pub(super) async fn join(app: &App, org: OrgId, who: &Person, role: Role) {
    app.store
        .add_member(&fixtures::membership(org, who.id, role, app.clock.now()))
        .await
        .expect("add_member");
    let session = app
        .store
        .session_by_token_hash(&keystead::TokenHash::of(&who.cookie))
        .await
        .expect("session_by_token_hash")
        .expect("the session");
    app.auth
        .sessions()
        .set_active_org(session.id, Some(org))
        .await
        .expect("set_active_org");
}

/// `POST /api/tokens` by `by`.
async fn request_token(app: &App, by: &Person, body: &Value) -> Response<Bytes> {
    app.send(Req::post("/api/tokens").cookie(&by.cookie).json(body))
        .await
}

/// Issues a token with `scopes` (asserting 201 and the answer); returns its id and the token.
pub(super) async fn issue(app: &App, by: &Person, scopes: &[&str]) -> (String, String) {
    let response = request_token(app, by, &json!({ "name": "ci", "scopes": scopes })).await;
    assert_status(&response, StatusCode::CREATED);
    let body = json_of(&response);
    assert_keys(&body, &["id", "name", "token", "scopes", "expires_at"]);
    let token = body["token"].as_str().expect("a token").to_owned();
    assert!(token.starts_with(PREFIX), "{token}");
    (body["id"].as_str().expect("an id").to_owned(), token)
}

/// `Authorization: Bearer {token}` authenticated as the adapters do: the synchronous fast path
/// (`Auth::authenticate_cached`) first, `Auth::authenticate` when it defers. So the cases of
/// this file check whichever path answers: a token's first use (a miss) and refusals that are
/// audited take the slow one, repeated uses and refusals on the token's own merits the fast one.
pub(super) async fn bearer(app: &App, token: &str) -> Authentication {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("a header value"),
    );
    match app.auth.authenticate_cached(&headers) {
        Some(authn) => authn,
        None => app.auth.authenticate(&headers).await,
    }
}

/// A library route that serves API tokens (listing an organization's members; `/orgs` itself
/// needs a browser session): a refused token is answered with its own failure there.
const TOKEN_ROUTE: &str = "/orgs/01890000-0000-7000-8000-000000000000/members";

/// The principal of a token that must work.
#[track_caller]
pub(super) fn accepted(authn: Authentication, what: &str) -> Principal {
    assert!(authn.bearer, "{what}: a Bearer credential");
    match authn.principal {
        Some(principal) => principal,
        None => panic!("{what}: refused with {:?}", authn.failure),
    }
}

/// Checks that a token was refused with `code`.
#[track_caller]
pub(super) fn assert_refused(authn: &Authentication, code: ErrorCode, what: &str) {
    assert!(authn.principal.is_none(), "{what}: must be refused");
    let got = authn.failure.as_ref().map(|e| e.code);
    assert_eq!(
        got,
        Some(code),
        "{what}: expected {}, got {got:?}",
        code.as_str()
    );
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// The header and claims of a token, decoded without any check.
pub(super) fn parts(token: &str) -> (Value, Value) {
    let jws = token.strip_prefix(PREFIX).expect("an sk_live_ token");
    let mut segments = jws.split('.');
    let mut next = || {
        let segment = segments.next().expect("a JWS segment");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url"))
            .expect("a JSON segment")
    };
    let header = next();
    let claims = next();
    (header, claims)
}

/// `header.claims` encoded, the signing input.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64_json(header), b64_json(claims))
}

/// A token signed with an Ed25519 key.
fn ed25519_token(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let signature = key.sign(input.as_bytes());
    format!("{PREFIX}{input}.{}", b64(&signature.to_bytes()))
}

/// The attacker's own Ed25519 key.
fn attacker_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5a; 32])
}

/// The app's signing key with this `kid`, read from the key directory as an insider would:
/// tokens signed with it prove the claim checks, not the signature check.
fn our_key(dir: &Path, kid: &str) -> SigningKey {
    let text =
        std::fs::read_to_string(dir.join(format!("{kid}.json"))).expect("the key file of the kid");
    let stored: Value = serde_json::from_str(&text).expect("a JSON key file");
    assert_eq!(stored["algorithm"], "EdDSA", "{}", stored["algorithm"]);
    let seed = URL_SAFE_NO_PAD
        .decode(stored["secret"].as_str().expect("a secret"))
        .expect("a base64url seed");
    SigningKey::from_bytes(&seed.try_into().expect("a 32-byte seed"))
}

/// `GET /.well-known/jwks.json`, checked for its shape; returns the keys.
pub(super) async fn jwks(app: &App) -> Vec<Value> {
    let response = app.send(Req::get("/.well-known/jwks.json").empty()).await;
    assert_status(&response, StatusCode::OK);
    let body = json_of(&response);
    assert_keys(&body, &["keys"]);
    let keys = body["keys"].as_array().expect("a keys array").clone();
    for key in &keys {
        assert_eq!(key["kty"], "OKP", "{key}");
        assert_eq!(key["crv"], "Ed25519", "{key}");
        assert_eq!(key["alg"], "EdDSA", "{key}");
        assert!(key.get("d").is_none(), "no private part in the JWKS: {key}");
        let x = URL_SAFE_NO_PAD
            .decode(key["x"].as_str().expect("an x"))
            .expect("base64url x");
        assert_eq!(x.len(), 32, "{key}");
    }
    keys
}

pub(super) fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter()
        .map(|k| k["kid"].as_str().expect("a kid").to_owned())
        .collect()
}

/// Checks a token's signature with the JWKS entry of its `kid`, by ed25519-dalek.
fn verify_with_jwks(token: &str, keys: &[Value]) {
    let (header, _) = parts(token);
    let key = keys
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("the JWKS has the kid {}", header["kid"]));
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().expect("an x"))
        .expect("base64url x")
        .try_into()
        .expect("32 bytes");
    let public = VerifyingKey::from_bytes(&x).expect("an Ed25519 public key");
    let jws = token.strip_prefix(PREFIX).expect("an sk_live_ token");
    let (input, signature) = jws.rsplit_once('.').expect("a signature");
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url signature")
        .try_into()
        .expect("64 bytes");
    public
        .verify(
            input.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .expect("the JWKS key verifies the token");
}

async fn all_audit_events(app: &App) -> Vec<AuditEvent> {
    app.store
        .audit_events(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .expect("audit_events")
}

fn events_of<'a>(events: &'a [AuditEvent], kind: &str, token_id: &str) -> Vec<&'a AuditEvent> {
    events
        .iter()
        .filter(|e| e.kind == kind && e.data["token_id"] == token_id)
        .collect()
}

/// A token made at `POST /api/tokens` is `sk_live_` + a JWS with the contract's header and
/// claims; it works on the hot path with exactly its scopes, and not on the session routes.
pub async fn api_tokens_http_token_is_created_and_allows_exactly_its_scopes(
    store: Arc<dyn AuthStore>,
) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    let org = create_org(app, &owner, "Acme").await;

    let response = request_token(
        app,
        &owner,
        &json!({ "name": "  deploy bot ", "scopes": ["read:projects"] }),
    )
    .await;
    assert_status(&response, StatusCode::CREATED);
    let body = json_of(&response);
    assert_keys(&body, &["id", "name", "token", "scopes", "expires_at"]);
    assert_eq!(body["name"], "deploy bot");
    assert_eq!(body["scopes"], json!(["read:projects"]));
    let expires_at = time_of(&body["expires_at"]);
    let expected = app.clock.now() + Duration::days(90);
    assert!(
        (expires_at - expected).abs() < Duration::seconds(2),
        "default lifetime 90 days: {expires_at}"
    );
    let token = body["token"].as_str().expect("a token").to_owned();
    let id = body["id"].as_str().expect("an id").to_owned();
    assert!(token.starts_with(PREFIX), "{token}");

    let (jose, claims) = parts(&token);
    assert_eq!(jose["alg"], "EdDSA", "{jose}");
    assert_eq!(jose["typ"], "at+jwt", "{jose}");
    assert!(jose["kid"].is_string(), "{jose}");
    assert_eq!(claims["sub"], owner.id.to_string());
    assert_eq!(claims["org"], org.to_string());
    assert_eq!(claims["scopes"], json!(["read:projects"]));
    assert_eq!(claims["jti"], id);
    assert_eq!(claims["iss"], ORIGIN);
    assert_eq!(claims["aud"], format!("{ORIGIN}/api"));
    assert_eq!(claims["exp"], expires_at.unix_timestamp());
    assert!(claims["iat"].is_i64(), "{claims}");

    let principal = accepted(bearer(app, &token).await, "a fresh token");
    assert_eq!(principal.user.id, owner.id);
    assert_eq!(principal.org_id(), Some(org));
    assert!(!principal.is_session());
    assert!(principal.require("read:projects").is_ok());
    let err = principal.require("write:deployments").unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientScope);
    assert_eq!(err.required_scope.as_deref(), Some("write:deployments"));
    assert_eq!(
        principal.require("billing:manage").unwrap_err().code,
        ErrorCode::InsufficientScope,
        "an owner's token has only its scopes"
    );

    // The routes that act on the signed-in user need a browser session.
    for (request, what) in [
        (
            Req::get("/auth/session")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .empty(),
            "GET /auth/session",
        ),
        (
            Req::get("/api/tokens")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .empty(),
            "GET /api/tokens",
        ),
        (
            Req::post("/api/tokens")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .json(&json!({ "name": "more", "scopes": ["read:projects"] })),
            "POST /api/tokens",
        ),
    ] {
        let response = app.send(request).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_problem(&response, 403, "forbidden");
    }

    // An organization route asks for its permission: members:read is not a scope of the token.
    let members = format!("/orgs/{org}/members");
    let response = app
        .send(
            Req::get(&members)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .empty(),
        )
        .await;
    assert_problem(&response, 403, "insufficient_scope");
    let (_, reader) = issue(app, &owner, &["members:read"]).await;
    let response = app
        .send(
            Req::get(&members)
                .header(header::AUTHORIZATION, format!("Bearer {reader}"))
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::OK);
}

/// Forged tokens, each a known attack on JWS verification, are 401 `token_invalid`; the
/// genuine token beside them works.
pub async fn api_tokens_http_forged_tokens_are_401_token_invalid(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    create_org(app, &owner, "Acme").await;
    let (_, token) = issue(app, &owner, &["read:projects"]).await;
    accepted(bearer(app, &token).await, "the genuine token");

    let (jose, claims) = parts(&token);
    let kid = jose["kid"].as_str().expect("a kid").to_owned();
    let jws = token.strip_prefix(PREFIX).expect("a prefix");
    let (input, signature) = jws.rsplit_once('.').expect("a signature");
    let payload = input.split_once('.').expect("a payload").1;
    let keys = jwks(app).await;
    let public_x = URL_SAFE_NO_PAD
        .decode(keys[0]["x"].as_str().expect("an x"))
        .expect("base64url");
    let attacker = attacker_key();
    let attacker_x = b64(attacker.verifying_key().as_bytes());
    let mut escalated = claims.clone();
    escalated["scopes"] = json!(ALL_PERMISSIONS);

    let mut forged: Vec<(String, String)> = Vec::new();
    // `alg: none`, in several casings, with no signature and with the genuine one.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "alg": alg, "typ": "at+jwt", "kid": kid });
        let input = signing_input(&header, &escalated);
        forged.push((format!("{PREFIX}{input}."), format!("alg {alg}, unsigned")));
        forged.push((
            format!("{PREFIX}{input}.{signature}"),
            format!("alg {alg}, old signature"),
        ));
        let input = signing_input(&header, &claims);
        forged.push((
            format!("{PREFIX}{input}."),
            format!("alg {alg}, own claims"),
        ));
    }
    // HS256 keyed with the public key (the JWKS `x`), with and without our kid.
    for header in [
        json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid }),
        json!({ "alg": "HS256", "typ": "at+jwt" }),
    ] {
        let input = signing_input(&header, &escalated);
        let mac = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(&public_x),
            Algorithm::HS256,
        )
        .expect("an HMAC");
        forged.push((
            format!("{PREFIX}{input}.{mac}"),
            format!("HS256 keyed with the public key, {header}"),
        ));
    }
    // Tampered claims under the old signature. The genuine token is in the cache of verified
    // tokens by now, and that cache is keyed by the signature: these must miss it.
    forged.push((
        format!("{PREFIX}{}.{signature}", signing_input(&jose, &escalated)),
        "escalated scopes, old signature".to_owned(),
    ));
    let mut other_user = claims.clone();
    other_user["sub"] = json!(UserId::new().to_string());
    forged.push((
        format!("{PREFIX}{}.{signature}", signing_input(&jose, &other_user)),
        "another sub, old signature".to_owned(),
    ));
    // The signature stripped, or its last byte changed.
    forged.push((format!("{PREFIX}{input}."), "stripped signature".to_owned()));
    forged.push((
        format!("{PREFIX}{input}"),
        "no signature segment".to_owned(),
    ));
    let mut sig = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    sig[63] ^= 1;
    forged.push((
        format!("{PREFIX}{input}.{}", b64(&sig)),
        "one bit of the signature flipped".to_owned(),
    ));
    // An embedded `jwk` of the attacker's key, signed by it (with our kid, and with its own).
    for kid in [kid.as_str(), "attacker"] {
        let header = json!({
            "alg": "EdDSA", "typ": "at+jwt", "kid": kid,
            "jwk": { "kty": "OKP", "crv": "Ed25519", "x": attacker_x, "kid": kid },
        });
        forged.push((
            ed25519_token(&attacker, &header, &escalated),
            format!("embedded jwk, kid {kid}"),
        ));
    }
    // `jku` at the attacker's URL, signed by the attacker's key.
    for kid in [kid.as_str(), "attacker"] {
        let header = json!({
            "alg": "EdDSA", "typ": "at+jwt", "kid": kid,
            "jku": "https://attacker.example/.well-known/jwks.json",
            "x5u": "https://attacker.example/cert.pem",
        });
        forged.push((
            ed25519_token(&attacker, &header, &escalated),
            format!("jku, kid {kid}"),
        ));
    }
    // `kid` path traversal, signed with our own key: only the kid is wrong.
    let ours = our_key(t.keys_dir.path(), &kid);
    for bad_kid in [
        "../../etc/passwd".to_owned(),
        format!("../keys/{kid}"),
        format!("./{kid}"),
        format!("{kid}.json"),
        format!("{}/../{kid}", t.keys_dir.path().display()),
        String::new(),
    ] {
        let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": bad_kid });
        forged.push((
            ed25519_token(&ours, &header, &claims),
            format!("kid {bad_kid:?}"),
        ));
    }
    let no_kid = json!({ "alg": "EdDSA", "typ": "at+jwt" });
    forged.push((ed25519_token(&ours, &no_kid, &claims), "no kid".to_owned()));
    // ES256 with r = s = 0.
    let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid });
    forged.push((
        format!(
            "{PREFIX}{}.{}",
            signing_input(&header, &escalated),
            b64(&[0; 64])
        ),
        "ES256, zero signature".to_owned(),
    ));
    // The genuine JWS without the prefix, or with another one.
    forged.push((jws.to_owned(), "no sk_live_ prefix".to_owned()));
    forged.push((format!("sk_test_{jws}"), "sk_test_ prefix".to_owned()));
    forged.push((
        format!("{}{jws}", PREFIX.to_uppercase()),
        "upper-case prefix".to_owned(),
    ));
    // Garbage.
    forged.push((format!("{PREFIX}{payload}"), "payload only".to_owned()));
    forged.push((format!("{PREFIX}a.b.c"), "not base64 JSON".to_owned()));
    forged.push((
        format!("{PREFIX}{}", "A".repeat(5000)),
        "oversized".to_owned(),
    ));

    for (forgery, what) in &forged {
        assert_refused(&bearer(app, forgery).await, ErrorCode::TokenInvalid, what);
    }
    // Through a route, a forged token is a 401 with the Bearer challenge.
    let response = app
        .send(
            Req::get(TOKEN_ROUTE)
                .header(header::AUTHORIZATION, format!("Bearer {}", forged[0].0))
                .empty(),
        )
        .await;
    assert_problem(&response, 401, "token_invalid");
    // None of them was audited as a use of the genuine token, which still works.
    accepted(
        bearer(app, &token).await,
        "the genuine token, after the attacks",
    );
}

/// Tokens signed with our own key but with a wrong `typ`, `iss`, `aud`, a future `nbf` or
/// `iat`, or a past `exp`, are refused: the claims are checked, not only the signature.
pub async fn api_tokens_http_token_claims_are_checked_beyond_the_signature(
    store: Arc<dyn AuthStore>,
) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    create_org(app, &owner, "Acme").await;
    let (_, token) = issue(app, &owner, &["read:projects"]).await;
    let (jose, claims) = parts(&token);
    let kid = jose["kid"].as_str().expect("a kid").to_owned();
    let ours = our_key(t.keys_dir.path(), &kid);
    let now = app.clock.now().unix_timestamp();

    // Control: our key and unchanged claims make a token that works (a new JSON encoding).
    let resigned = ed25519_token(&ours, &jose, &claims);
    assert_ne!(resigned, token, "a different encoding");
    accepted(bearer(app, &resigned).await, "re-signed with our key");

    let with = |name: &str, value: Value| {
        let mut c = claims.clone();
        c[name] = value;
        ed25519_token(&ours, &jose, &c)
    };
    let without = |name: &str| {
        let mut c = claims.clone();
        c.as_object_mut().expect("an object").remove(name);
        ed25519_token(&ours, &jose, &c)
    };
    let with_header = |name: &str, value: Value| {
        let mut h = jose.clone();
        h[name] = value;
        ed25519_token(&ours, &h, &claims)
    };
    let mut header_without_typ = jose.clone();
    header_without_typ
        .as_object_mut()
        .expect("an object")
        .remove("typ");
    let cases = [
        (with("nbf", json!(now + 3600)), "nbf an hour ahead"),
        (with("iat", json!(now + 3600)), "iat an hour ahead"),
        (with("iss", json!("http://evil.test")), "another iss"),
        (with("iss", json!(format!("{ORIGIN}/"))), "iss with a slash"),
        (with("aud", json!("http://app.test")), "aud without /api"),
        (with("aud", json!("http://other.test/api")), "another aud"),
        (with("jti", json!("not-a-uuid")), "a malformed jti"),
        (with("sub", json!("not-a-uuid")), "a malformed sub"),
        (
            with("org", json!(OrgId::new().to_string())),
            "an org the user is not in",
        ),
        (with("scopes", json!("read:projects")), "scopes not a list"),
        (
            with("scopes", json!(["Read Projects!"])),
            "a malformed scope",
        ),
        (without("exp"), "no exp"),
        (without("iss"), "no iss"),
        (without("aud"), "no aud"),
        (without("sub"), "no sub"),
        (with_header("typ", json!("JWT")), "typ JWT"),
        (with_header("typ", json!("at+JWT")), "typ at+JWT"),
        (ed25519_token(&ours, &header_without_typ, &claims), "no typ"),
    ];
    for (forgery, what) in &cases {
        let authn = bearer(app, forgery).await;
        if *what == "an org the user is not in" {
            // Well signed and well formed: the owner is no member there.
            assert_refused(&authn, ErrorCode::TokenRevoked, what);
        } else {
            assert_refused(&authn, ErrorCode::TokenInvalid, what);
        }
    }
    // Our key, an `exp` already past: expired, not invalid.
    assert_refused(
        &bearer(app, &with("exp", json!(now - 10))).await,
        ErrorCode::TokenExpired,
        "exp in the past",
    );
}

/// A token stops working when the clock passes its `exp` (401 `token_expired`), whether it
/// was verified before (cached) or not.
pub async fn api_tokens_http_token_expires_with_the_clock(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    create_org(app, &owner, "Acme").await;
    let short = |days: i64| json!({ "name": "short", "scopes": ["read:projects"], "expires_in_days": days });
    let response = request_token(app, &owner, &short(1)).await;
    assert_status(&response, StatusCode::CREATED);
    let used = json_of(&response)["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let response = request_token(app, &owner, &short(1)).await;
    assert_status(&response, StatusCode::CREATED);
    let unused = json_of(&response)["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    accepted(bearer(app, &used).await, "before expiry");

    app.clock.advance(Duration::days(1) - Duration::seconds(5));
    accepted(bearer(app, &used).await, "5 s before expiry");
    app.clock.advance(Duration::seconds(6));
    assert_refused(
        &bearer(app, &used).await,
        ErrorCode::TokenExpired,
        "a verified token past exp",
    );
    assert_refused(
        &bearer(app, &unused).await,
        ErrorCode::TokenExpired,
        "a never-verified token past exp",
    );
    let response = app
        .send(
            Req::get(TOKEN_ROUTE)
                .header(header::AUTHORIZATION, format!("Bearer {used}"))
                .empty(),
        )
        .await;
    assert_problem(&response, 401, "token_expired");
}

/// An `Authorization` header with another scheme (Basic, …) is no credential of ours: refused
/// as `token_invalid` on both paths, and not taken for a Bearer request (which the CSRF rule
/// exempts).
pub async fn api_tokens_http_other_authorization_schemes_are_not_bearer(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let app = &t.app;
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "sk_live_x", "Token abc"] {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            value.parse().expect("a header value"),
        );
        let cached = app
            .auth
            .authenticate_cached(&headers)
            .expect("answered without the store");
        let authn = app.auth.authenticate(&headers).await;
        for (path, authn) in [("fast", cached), ("slow", authn)] {
            assert!(authn.principal.is_none(), "{path}: {value}");
            assert!(!authn.bearer, "{path}: {value}");
            assert_eq!(
                authn.failure.map(|e| e.code),
                Some(ErrorCode::TokenInvalid),
                "{path}: {value}"
            );
        }
    }
}

/// The token cache is looked up with the header's bytes as sent, before they are checked to be
/// text. A genuine token, verified and cached, wrapped in or altered with bytes that are not
/// visible ASCII (obs-text, which a header value may carry) is `token_invalid` on both paths,
/// and not taken for a Bearer request; padding with spaces and tabs (text) still reads the
/// token.
pub async fn api_tokens_http_token_with_bytes_that_are_not_text_is_token_invalid(
    store: Arc<dyn AuthStore>,
) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    create_org(app, &owner, "Acme").await;
    let (_, token) = issue(app, &owner, &["read:projects"]).await;
    accepted(bearer(app, &token).await, "the genuine token, now cached");
    accepted(
        bearer(app, &token).await,
        "the genuine token, from the cache",
    );

    let with = |value: Vec<u8>| {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(&value).expect("bytes a header value may hold"),
        );
        headers
    };
    let bearer_bytes = |token: &[u8]| [b"Bearer ".as_slice(), token].concat();
    let mut altered = token.clone().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = 0xe9;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "obs-text after the token",
            bearer_bytes(&[token.as_bytes(), b"\xff"].concat()),
        ),
        (
            "obs-text before the token",
            bearer_bytes(&[b"\xa0", token.as_bytes()].concat()),
        ),
        (
            "obs-text before the scheme",
            [b"\xff".as_slice(), &bearer_bytes(token.as_bytes())].concat(),
        ),
        (
            "obs-text for the separator",
            [b"Bearer\xa0".as_slice(), token.as_bytes()].concat(),
        ),
        ("a byte of the token replaced", bearer_bytes(&altered)),
        ("the signature's last byte replaced", {
            let mut last = token.clone().into_bytes();
            *last.last_mut().expect("a token") = 0x80;
            bearer_bytes(&last)
        }),
    ];
    for (what, value) in cases {
        let headers = with(value);
        let cached = app
            .auth
            .authenticate_cached(&headers)
            .expect("refused without the store");
        let slow = app.auth.authenticate(&headers).await;
        for (path, authn) in [("fast", cached), ("slow", slow)] {
            assert_refused(&authn, ErrorCode::TokenInvalid, &format!("{path}: {what}"));
            // Not text, so not a Bearer request (which the CSRF rule would exempt).
            assert!(!authn.bearer, "{path}: {what}");
        }
    }
    for padded in [format!("Bearer  {token} "), format!("bearer \t{token}\t")] {
        let headers = with(padded.clone().into_bytes());
        let cached = app
            .auth
            .authenticate_cached(&headers)
            .expect("answered from the cache");
        let slow = app.auth.authenticate(&headers).await;
        for (path, authn) in [("fast", cached), ("slow", slow)] {
            accepted(authn, &format!("{path}: {padded:?}"));
        }
    }
    accepted(bearer(app, &token).await, "the genuine token, still");
}

/// `DELETE /api/tokens/{id}`: 204, then the token is 401 `token_revoked` at once; only the
/// creator or `tokens:manage` may revoke, and a forged token with the revoked id stays
/// `token_invalid`.
pub async fn api_tokens_http_revoked_token_is_401_token_revoked_at_once(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    let org = create_org(app, &owner, "Acme").await;
    let member = person(app, "member@example.com").await;
    join(app, org, &member, Role::MEMBER).await;
    let (id, token) = issue(app, &owner, &["read:projects"]).await;
    accepted(bearer(app, &token).await, "before revocation");

    // A member without tokens:manage cannot revoke the owner's token.
    let response = app
        .send(
            Req::delete(&format!("/api/tokens/{id}"))
                .cookie(&member.cookie)
                .empty(),
        )
        .await;
    assert_problem(&response, 403, "forbidden");
    accepted(bearer(app, &token).await, "after the refused revocation");
    // Unknown ids are 404.
    let response = app
        .send(
            Req::delete(&format!("/api/tokens/{}", OrgId::new()))
                .cookie(&owner.cookie)
                .empty(),
        )
        .await;
    assert_problem(&response, 404, "not_found");

    let response = app
        .send(
            Req::delete(&format!("/api/tokens/{id}"))
                .cookie(&owner.cookie)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_refused(
        &bearer(app, &token).await,
        ErrorCode::TokenRevoked,
        "right after revocation",
    );
    let response = app
        .send(
            Req::get(TOKEN_ROUTE)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .empty(),
        )
        .await;
    assert_problem(&response, 401, "token_revoked");
    // Signature first: a tampered token with the revoked jti is invalid, not revoked.
    let (jose, mut claims) = parts(&token);
    claims["scopes"] = json!(ALL_PERMISSIONS);
    let signature = token.rsplit_once('.').expect("a signature").1;
    let tampered = format!("{PREFIX}{}.{signature}", signing_input(&jose, &claims));
    assert_refused(
        &bearer(app, &tampered).await,
        ErrorCode::TokenInvalid,
        "tampered revoked token",
    );
    // The listing shows when.
    let response = app
        .send(Req::get("/api/tokens").cookie(&owner.cookie).empty())
        .await;
    let list = json_of(&response);
    let row = list
        .as_array()
        .expect("an array")
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the revoked token is listed");
    assert!(row["revoked_at"].is_string(), "{row}");
    // A second instance over the same store (no shared memory) refuses it too.
    let other = token_app_sharing_keys(&store, &t).await;
    assert_refused(
        &bearer(&other, &token).await,
        ErrorCode::TokenRevoked,
        "another instance",
    );
}

/// Another `Auth` over the same store and key directory: a second instance of the app.
async fn token_app_sharing_keys(store: &Arc<dyn AuthStore>, t: &TokenApp) -> App {
    token_app_sharing_keys_with(store, t, TokenConfig::default()).await
}

/// A second instance of the app with its own token settings.
async fn token_app_sharing_keys_with(
    store: &Arc<dyn AuthStore>,
    t: &TokenApp,
    config: TokenConfig,
) -> App {
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(t.keys_dir.path()).expect("a key store")),
        t.app.clock.clone(),
        KeyAlgorithm::EdDSA,
        Duration::days(365),
    )
    .await
    .expect("a key ring");
    let mailer = MemoryMailer::default();
    let auth = Auth::builder(
        store.clone(),
        AppOrigin::parse(ORIGIN).expect("a valid origin"),
    )
    .clock(t.app.clock.clone())
    .mailer(Arc::new(mailer.clone()))
    .api_tokens(keys, config)
    .build();
    App {
        store: store.clone(),
        clock: t.app.clock.clone(),
        mailer,
        auth,
    }
}

/// A token issued by `by` for `days` days: its id and the token.
async fn issue_for_days(app: &App, by: &Person, days: i64) -> (String, String) {
    let body = json!({ "name": "ci", "scopes": ["read:projects"], "expires_in_days": days });
    let response = request_token(app, by, &body).await;
    assert_status(&response, StatusCode::CREATED);
    let body = json_of(&response);
    (
        body["id"].as_str().expect("an id").to_owned(),
        body["token"].as_str().expect("a token").to_owned(),
    )
}

/// The revocation list an instance holds is bounded by expiry: `prune_revocations` drops the
/// revocations of expired tokens (refused as `token_expired` from then on, as before), keeps
/// those of tokens still valid (refused as `token_revoked`, on both paths), and does not drop
/// a revocation that came from the feed without the token's expiry before the store shows
/// the token expired — even on an instance whose longest lifetime is shorter than the token's.
pub async fn api_tokens_http_revocation_list_is_pruned_by_expiry(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let app = &t.app;
    let tokens = app.auth.tokens().expect("API tokens are on");
    let owner = person(app, "owner@example.com").await;
    create_org(app, &owner, "Acme").await;
    let (short_id, short) = issue_for_days(app, &owner, 1).await;
    let (long_id, long) = issue_for_days(app, &owner, 30).await;
    let (fed_id, fed) = issue_for_days(app, &owner, 30).await;
    // A second instance whose longest lifetime (10 days) is shorter than the tokens' (30).
    let mut config = TokenConfig::default();
    config.max_ttl = Duration::days(10);
    let short_lived = token_app_sharing_keys_with(&store, &t, config).await;
    let other = short_lived.auth.tokens().expect("API tokens are on");
    for token in [&short, &long, &fed] {
        accepted(bearer(app, token).await, "before revocation");
        accepted(bearer(&short_lived, token).await, "before revocation, B");
    }
    assert_eq!(tokens.revocations_held(), 0);

    for id in [&short_id, &long_id] {
        let response = app
            .send(
                Req::delete(&format!("/api/tokens/{id}"))
                    .cookie(&owner.cookie)
                    .empty(),
            )
            .await;
        assert_status(&response, StatusCode::NO_CONTENT);
    }
    // Revoked elsewhere: this instance learns only the id, from the feed.
    let fed_token_id = fed_id.parse().expect("a token id");
    app.store
        .revoke_api_token(fed_token_id, app.clock.now())
        .await
        .expect("revoke_api_token");
    let fed_change = Change::TokenRevoked { id: fed_token_id };
    app.auth.publish(fed_change.clone()).await;
    short_lived
        .auth
        .apply(&keystead::tokens::FeedEvent::Change(fed_change))
        .await;
    assert_eq!(tokens.revocations_held(), 3);
    assert_eq!(tokens.prune_revocations().await, 0, "nothing has expired");
    for token in [&short, &long, &fed] {
        assert_refused(
            &bearer(app, token).await,
            ErrorCode::TokenRevoked,
            "revoked",
        );
    }

    // Two days on: the 1-day token's revocation goes; the others stay, and still count.
    app.clock.advance(Duration::days(2));
    assert_eq!(tokens.prune_revocations().await, 1);
    assert_eq!(tokens.revocations_held(), 2);
    assert_refused(
        &bearer(app, &short).await,
        ErrorCode::TokenExpired,
        "the pruned revoked token, past its expiry",
    );
    for token in [&long, &fed] {
        assert_refused(
            &bearer(app, token).await,
            ErrorCode::TokenRevoked,
            "revoked, unexpired, after the prune",
        );
    }

    // Eleven days on, past B's longest lifetime: B's estimate for the feed's revocation has
    // run out, but the store says the token is good for 19 more days, so it stays.
    app.clock.advance(Duration::days(9));
    other.prune_revocations().await;
    assert_refused(
        &bearer(&short_lived, &fed).await,
        ErrorCode::TokenRevoked,
        "B: revoked, past B's longest lifetime, not past its own expiry",
    );
    assert_eq!(
        tokens.prune_revocations().await,
        0,
        "A holds the feed's revocation until A's longest lifetime"
    );

    // Past the tokens' expiry: the exactly dated revocation goes at once, the feed's stays
    // until A's estimate runs out. Every token is refused as expired.
    app.clock.advance(Duration::days(20));
    assert_eq!(tokens.prune_revocations().await, 1);
    assert_eq!(tokens.revocations_held(), 1, "the feed's, until 365 days");
    for token in [&short, &long, &fed] {
        assert_refused(
            &bearer(app, token).await,
            ErrorCode::TokenExpired,
            "expired",
        );
        assert_refused(
            &bearer(&short_lived, token).await,
            ErrorCode::TokenExpired,
            "expired, B",
        );
    }
    // A year after the revocation, A reads the token's expiry and lets it go.
    app.clock.advance(Duration::days(365));
    assert_eq!(tokens.prune_revocations().await, 1);
    assert_eq!(tokens.revocations_held(), 0);
}

/// An owner removed from the organization: their token is 401 `token_revoked` as soon as the
/// change is published, even though the membership was cached.
pub async fn api_tokens_http_token_of_a_removed_owner_is_401_token_revoked(
    store: Arc<dyn AuthStore>,
) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    let org = create_org(app, &owner, "Acme").await;
    let (id, token) = issue(app, &owner, &["read:projects"]).await;
    let second = person(app, "second@example.com").await;
    join(app, org, &second, Role::OWNER).await;
    accepted(bearer(app, &token).await, "while a member");

    app.store
        .remove_member(org, owner.id)
        .await
        .expect("remove_member");
    app.auth
        .publish(Change::MembershipChanged {
            org_id: org,
            user_id: owner.id,
        })
        .await;
    assert_refused(
        &bearer(app, &token).await,
        ErrorCode::TokenRevoked,
        "after removal",
    );
    let events = all_audit_events(app).await;
    let refused = events_of(&events, "api_token.refused", &id);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].data["reason"], "not_a_member");
    assert_eq!(refused[0].org_id, Some(org));
    // Replays within a minute add no audit event.
    assert_refused(
        &bearer(app, &token).await,
        ErrorCode::TokenRevoked,
        "replay",
    );
    let events = all_audit_events(app).await;
    assert_eq!(events_of(&events, "api_token.refused", &id).len(), 1);
}

/// An owner demoted to member: their token keeps the scopes a member still has, and the others
/// are 403 `forbidden` (not `insufficient_scope`) as soon as the change is published.
pub async fn api_tokens_http_token_of_a_demoted_owner_loses_what_the_role_no_longer_grants(
    store: Arc<dyn AuthStore>,
) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    let org = create_org(app, &owner, "Acme").await;
    let (_, token) = issue(
        app,
        &owner,
        &["read:projects", "members:manage", "billing:manage"],
    )
    .await;
    let second = person(app, "second@example.com").await;
    join(app, org, &second, Role::OWNER).await;
    let before = accepted(bearer(app, &token).await, "as owner");
    for scope in ["read:projects", "members:manage", "billing:manage"] {
        assert!(before.require(scope).is_ok(), "{scope} as owner");
    }

    app.store
        .change_role(org, owner.id, &Role::MEMBER)
        .await
        .expect("change_role");
    app.auth
        .publish(Change::MembershipChanged {
            org_id: org,
            user_id: owner.id,
        })
        .await;
    let after = accepted(bearer(app, &token).await, "as member");
    assert_eq!(after.role(), Some(&Role::MEMBER));
    assert!(after.require("read:projects").is_ok());
    for scope in ["members:manage", "billing:manage"] {
        let err = after.require(scope).unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden, "{scope} after demotion");
    }
    assert_eq!(
        after.require("write:deployments").unwrap_err().code,
        ErrorCode::InsufficientScope,
        "a member's permission the token never had"
    );
    // Promoted again: the scopes come back.
    app.store
        .change_role(org, owner.id, &Role::OWNER)
        .await
        .expect("change_role");
    app.auth
        .publish(Change::MembershipChanged {
            org_id: org,
            user_id: owner.id,
        })
        .await;
    let again = accepted(bearer(app, &token).await, "owner again");
    assert!(again.require("billing:manage").is_ok());
}

/// Scopes must be a non-empty list of known permissions (else 422 `invalid_scope`) that the
/// creator has (else 403 `forbidden`); `expires_in_days` is 1 to 365 (else 400); a session
/// needs an active organization and `tokens:create`.
pub async fn api_tokens_http_token_requests_are_validated(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    // No active organization yet.
    let response = request_token(
        app,
        &owner,
        &json!({ "name": "x", "scopes": ["read:projects"] }),
    )
    .await;
    assert_problem(&response, 403, "forbidden");
    let org = create_org(app, &owner, "Acme").await;
    let member = person(app, "member@example.com").await;
    join(app, org, &member, Role::MEMBER).await;

    let cases = [
        (json!({ "name": "x", "scopes": [] }), 422, "invalid_scope"),
        (
            json!({ "name": "x", "scopes": ["launch:missiles"] }),
            422,
            "invalid_scope",
        ),
        (
            json!({ "name": "x", "scopes": ["read:projects", "nope"] }),
            422,
            "invalid_scope",
        ),
        (
            json!({ "name": "x", "scopes": ["READ PROJECTS"] }),
            422,
            "invalid_scope",
        ),
        (
            json!({ "name": "x", "scopes": ["read:projects"], "expires_in_days": 366 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "x", "scopes": ["read:projects"], "expires_in_days": 0 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "x", "scopes": ["read:projects"], "expires_in_days": -1 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "", "scopes": ["read:projects"] }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "x".repeat(101), "scopes": ["read:projects"] }),
            400,
            "invalid_request",
        ),
        (
            json!({ "scopes": ["read:projects"] }),
            400,
            "invalid_request",
        ),
        (
            json!({ "name": "x", "scopes": "read:projects" }),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in &cases {
        let response = request_token(app, &owner, body).await;
        assert_eq!(response.status().as_u16(), *status, "{body}");
        assert_problem(&response, *status, code);
    }
    // A known scope beyond the creator's permissions.
    for scope in [
        "billing:manage",
        "members:manage",
        "tokens:manage",
        "org:delete",
    ] {
        let response =
            request_token(app, &member, &json!({ "name": "x", "scopes": [scope] })).await;
        assert_problem(&response, 403, "forbidden");
    }
    // Everything a member has is fine, and so is the longest lifetime.
    let response = request_token(
        app,
        &member,
        &json!({ "name": "all", "scopes": MEMBER_PERMISSIONS, "expires_in_days": 365 }),
    )
    .await;
    assert_status(&response, StatusCode::CREATED);
    let expires_at = time_of(&json_of(&response)["expires_at"]);
    assert!(
        (expires_at - (app.clock.now() + Duration::days(365))).abs() < Duration::seconds(2),
        "{expires_at}"
    );
    // None of the refused requests made a token.
    let listed = app
        .store
        .api_tokens_for_org(org, None)
        .await
        .expect("api_tokens_for_org");
    assert_eq!(listed.len(), 1, "{listed:?}");
}

/// `GET /api/tokens`: `tokens:manage` sees the org's tokens, others their own; the token itself
/// is never listed.
pub async fn api_tokens_http_list_own_tokens_or_all_with_tokens_manage(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    let org = create_org(app, &owner, "Acme").await;
    let member = person(app, "member@example.com").await;
    join(app, org, &member, Role::MEMBER).await;
    let (owners_id, _) = issue(app, &owner, &["read:projects"]).await;
    let (members_id, _) = issue(app, &member, &["read:projects"]).await;
    // Another org's tokens are not listed.
    let outsider = person(app, "outsider@example.com").await;
    create_org(app, &outsider, "Other").await;
    issue(app, &outsider, &["read:projects"]).await;

    let list = |p: &Person| {
        let cookie = p.cookie.clone();
        async move {
            let response = app
                .send(Req::get("/api/tokens").cookie(&cookie).empty())
                .await;
            assert_status(&response, StatusCode::OK);
            json_of(&response).as_array().expect("an array").clone()
        }
    };
    let all = list(&owner).await;
    let mut ids: Vec<&str> = all
        .iter()
        .map(|r| r["id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    let mut expected = vec![owners_id.as_str(), members_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for row in &all {
        assert_keys(
            row,
            &[
                "id",
                "name",
                "scopes",
                "created_by",
                "created_at",
                "expires_at",
                "last_used_at",
                "revoked_at",
            ],
        );
        assert!(
            row["last_used_at"].is_null() && row["revoked_at"].is_null(),
            "{row}"
        );
        time_of(&row["created_at"]);
        time_of(&row["expires_at"]);
    }
    let mine = list(&member).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], members_id.as_str());
    assert_eq!(mine[0]["created_by"], member.id.to_string());
    // The member may revoke their own token.
    let response = app
        .send(
            Req::delete(&format!("/api/tokens/{members_id}"))
                .cookie(&member.cookie)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
}

/// Uses are noted on the hot path and written in one batch (`last_used_at`, `api_token.used`);
/// creation, revocation and refusals of genuine tokens are audited.
pub async fn api_tokens_http_token_use_and_lifecycle_are_recorded(store: Arc<dyn AuthStore>) {
    // The background writer must not run between the uses and the check that they are not
    // written yet (it did once, on a loaded machine, with the default 5 s): an hour apart.
    let mut config = TokenConfig::default();
    config.use_interval = Duration::hours(1);
    let t = token_app_with(&store, config).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    let org = create_org(app, &owner, "Acme").await;
    let (id, token) = issue(app, &owner, &["read:projects"]).await;
    let tokens = app.auth.tokens().expect("tokens are on");
    let record = |id: &str| {
        let id = id.parse().expect("a token id");
        async move {
            app.store
                .api_token(id)
                .await
                .expect("api_token")
                .expect("the token's record")
        }
    };
    assert_eq!(record(&id).await.last_used_at, None);

    accepted(bearer(app, &token).await, "first use");
    app.clock.advance(Duration::seconds(3));
    let last_use: OffsetDateTime = app.clock.now();
    accepted(bearer(app, &token).await, "second use");
    assert_eq!(
        record(&id).await.last_used_at,
        None,
        "not written on the hot path"
    );
    assert_eq!(tokens.flush_usage().await.expect("flush_usage"), 1);
    let used_at = record(&id).await.last_used_at.expect("last_used_at");
    assert!(
        (used_at - last_use).abs() < Duration::milliseconds(1),
        "{used_at} vs {last_use}"
    );
    assert_eq!(tokens.flush_usage().await.expect("flush_usage"), 0);
    let response = app
        .send(Req::get("/api/tokens").cookie(&owner.cookie).empty())
        .await;
    let listed = json_of(&response);
    assert!(
        (time_of(&listed[0]["last_used_at"]) - last_use).abs() < Duration::seconds(1),
        "{listed}"
    );

    let response = app
        .send(
            Req::delete(&format!("/api/tokens/{id}"))
                .cookie(&owner.cookie)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_refused(
        &bearer(app, &token).await,
        ErrorCode::TokenRevoked,
        "revoked",
    );

    let events = all_audit_events(app).await;
    let created = events_of(&events, "api_token.created", &id);
    assert_eq!(created.len(), 1, "{events:?}");
    assert_eq!(created[0].actor_id, Some(owner.id));
    assert_eq!(created[0].org_id, Some(org));
    assert_eq!(created[0].data["scopes"], json!(["read:projects"]));
    let used = events_of(&events, "api_token.used", &id);
    assert_eq!(used.len(), 1, "{events:?}");
    assert_eq!(used[0].data["uses"], 2);
    let revoked = events_of(&events, "api_token.revoked", &id);
    assert_eq!(revoked.len(), 1, "{events:?}");
    assert_eq!(revoked[0].actor_id, Some(owner.id));
    let refused = events_of(&events, "api_token.refused", &id);
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0].data["reason"], "revoked");
    // No event carries the token or its signature.
    for event in &events {
        let text = event.data.to_string();
        assert!(!text.contains(PREFIX), "{text}");
        let signature = token.rsplit_once('.').expect("a signature").1;
        assert!(!text.contains(signature), "{text}");
    }
}

/// The JWKS publishes the Ed25519 public key that verifies the tokens (kid as in the header);
/// after a rotation new tokens carry the new kid, old ones still verify and both keys are
/// listed; once the retired key's tokens have all expired, `prune` drops it.
pub async fn api_tokens_http_jwks_publishes_the_signing_keys_through_rotation(
    store: Arc<dyn AuthStore>,
) {
    let t = token_app(&store).await;
    let app = &t.app;
    let owner = person(app, "owner@example.com").await;
    create_org(app, &owner, "Acme").await;
    let (_, old_used) = issue(app, &owner, &["read:projects"]).await;
    let (_, old_unused) = issue(app, &owner, &["read:projects"]).await;
    let old_kid = parts(&old_used).0["kid"]
        .as_str()
        .expect("a kid")
        .to_owned();
    let keys = jwks(app).await;
    assert_eq!(kids(&keys), vec![old_kid.clone()]);
    verify_with_jwks(&old_used, &keys);
    accepted(bearer(app, &old_used).await, "before rotation");

    let ring = app.auth.tokens().expect("tokens are on").keys();
    // Rotations happen some time after the key was made (the JWKS lists newest first).
    app.clock.advance(Duration::minutes(1));
    let new_kid = ring.rotate().await.expect("rotate");
    assert_ne!(new_kid, old_kid);
    let (_, new_token) = issue(app, &owner, &["read:projects"]).await;
    assert_eq!(parts(&new_token).0["kid"], new_kid.as_str());
    let keys = jwks(app).await;
    assert_eq!(
        kids(&keys),
        vec![new_kid.clone(), old_kid.clone()],
        "newest first"
    );
    verify_with_jwks(&new_token, &keys);
    verify_with_jwks(&old_unused, &keys);
    accepted(bearer(app, &new_token).await, "signed by the new key");
    accepted(bearer(app, &old_used).await, "old, verified before");
    accepted(
        bearer(app, &old_unused).await,
        "old, first seen after rotation",
    );
    // A restart loads both keys and signs with the new one.
    let restarted = token_app_sharing_keys(&store, &t).await;
    accepted(
        bearer(&restarted, &old_unused).await,
        "old, after a restart",
    );
    let restarted_ring = restarted.auth.tokens().expect("tokens are on").keys();
    assert_eq!(
        kids(&jwks(&restarted).await),
        vec![new_kid.clone(), old_kid.clone()]
    );
    assert!(
        restarted_ring.jwks()["keys"]
            .as_array()
            .is_some_and(|k| k.len() == 2)
    );

    // Nothing to prune while the old key may have live tokens.
    assert_eq!(ring.prune().await.expect("prune"), 0);
    app.clock
        .advance(Duration::days(365) + Duration::seconds(1));
    assert_eq!(ring.prune().await.expect("prune"), 1);
    assert_eq!(kids(&jwks(app).await), vec![new_kid.clone()]);
    let files: Vec<_> = std::fs::read_dir(t.keys_dir.path())
        .expect("the key directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), 1, "the retired key's file is gone");
    assert!(
        bearer(app, &old_unused).await.principal.is_none(),
        "the old key verifies nothing any more"
    );
    // A forgery naming the pruned kid, signed with the pruned key, is invalid.
    let old_key_claims = parts(&new_token).1;
    let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": old_kid });
    let mut claims = old_key_claims;
    claims["exp"] = json!(app.clock.now().unix_timestamp() + 3600);
    let attacker = attacker_key();
    assert_refused(
        &bearer(app, &ed25519_token(&attacker, &header, &claims)).await,
        ErrorCode::TokenInvalid,
        "the pruned kid",
    );
}
