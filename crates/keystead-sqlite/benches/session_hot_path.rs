//! The session hot path: validating a session cookie's token, as every authenticated request
//! does. Uses a real SQLite file behind the session manager (the cache-miss case reads it).
//! Beside it, the API token hot path (`Authorization: Bearer sk_live_…`, Ed25519, warm cache)
//! and, as its baseline, one bare `jsonwebtoken::decode` of the same JWS.
//!
//! `cargo bench -p keystead-sqlite --bench session_hot_path`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keystead::principal::{Credential, Principal};
use keystead::session::{SessionConfig, SessionManager, SessionMeta};
use keystead::tokens::{DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::{
    AuthStore, Email, NewUser, OrgId, Organization, Role, SessionId, SystemClock, TokenHash, User,
    UserId,
};
use keystead_sqlite::SqliteStore;
use serde::Deserialize;
use time::Duration;

/// The claims of an API token, for the baseline decode.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    org: String,
    scopes: Vec<String>,
    jti: String,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
}

/// An `Auth` with API tokens over `store`, an organization owned by `user`, and a token of
/// theirs: the `Authorization` headers, the bare JWS, and the verifier's key and validation.
async fn token_setup(
    store: Arc<dyn AuthStore>,
    user: &User,
    keys_dir: &std::path::Path,
) -> (
    keystead::Auth,
    http::HeaderMap,
    String,
    DecodingKey,
    Validation,
) {
    let origin = "http://bench.test";
    let clock: Arc<dyn keystead::Clock> = Arc::new(SystemClock);
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(keys_dir).expect("key store")),
        clock.clone(),
        KeyAlgorithm::EdDSA,
        Duration::days(365),
    )
    .await
    .expect("key ring");
    let auth = keystead::Auth::builder(
        store.clone(),
        keystead::web::AppOrigin::parse(origin).expect("origin"),
    )
    .mailer(Arc::new(keystead::mail::MemoryMailer::default()))
    .api_tokens(keys, TokenConfig::default())
    .build();
    let now = clock.now();
    let org = Organization {
        id: OrgId::new(),
        name: "Bench".to_owned(),
        slug: "bench".to_owned(),
        created_at: now,
        external_id: None,
        mfa_required: false,
    };
    store
        .create_organization(&org, user.id)
        .await
        .expect("organization");
    let principal = Principal::new(
        user.clone(),
        Credential::Session {
            id: SessionId::new(),
            expires_at: now + Duration::days(1),
            authenticated_at: now,
        },
        Some((org.id, Role::OWNER)),
        auth.roles(),
    );
    let tokens = auth.tokens().expect("tokens on");
    let (_, token) = tokens
        .issue(
            &principal,
            auth.roles(),
            "bench",
            &["read:projects".to_owned()],
            None,
        )
        .await
        .expect("token");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", token.expose())
            .parse()
            .expect("header"),
    );
    let jws = token
        .expose()
        .strip_prefix("sk_live_")
        .expect("prefix")
        .to_owned();
    let jwks = tokens.keys().jwks();
    let key = DecodingKey::from_ed_components(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("decoding key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.set_issuer(&[origin]);
    validation.set_audience(&[format!("{origin}/api")]);
    (auth, headers, jws, key, validation)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cached, uncached, token, auth, headers, bearer) = rt.block_on(async {
        let store: Arc<dyn AuthStore> = Arc::new(
            SqliteStore::open(dir.path().join("bench.db"))
                .await
                .expect("open"),
        );
        let user = User {
            id: UserId::new(),
            email: Email::parse("bench@example.com").expect("email"),
            name: None,
            email_verified_at: None,
            created_at: keystead::Clock::now(&SystemClock),
            external_id: None,
            disabled_at: None,
        };
        store
            .create_user(&NewUser {
                user: user.clone(),
                password_hash: None,
            })
            .await
            .expect("user");
        // The whole per-request step an adapter runs: headers in, principal out.
        let auth = keystead::Auth::builder(
            store.clone(),
            keystead::web::AppOrigin::parse("http://bench.test").expect("origin"),
        )
        .mailer(Arc::new(keystead::mail::MemoryMailer::default()))
        .build();
        let auth_session = auth
            .sessions()
            .create(user.id, SessionMeta::default())
            .await
            .expect("session");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!(
                "theme=dark; authkit_session={}",
                auth_session.token.expose()
            )
            .parse()
            .expect("header"),
        );
        let cached = SessionManager::new(
            store.clone(),
            Arc::new(SystemClock),
            SessionConfig::default(),
        );
        // A TTL far below one iteration's time: every validation reads the store.
        let store_for_tokens = store.clone();
        let uncached = SessionManager::new(
            store,
            Arc::new(SystemClock),
            SessionConfig::new()
                .cache_ttl(Duration::nanoseconds(1))
                .expect("ttl"),
        );
        let created = cached
            .create(user.id, SessionMeta::default())
            .await
            .expect("session");
        let bearer = token_setup(store_for_tokens, &user, &dir.path().join("keys")).await;
        (cached, uncached, created.token, auth, headers, bearer)
    });
    let (token_auth, bearer_headers, jws, decoding_key, validation) = bearer;

    let mut group = c.benchmark_group("session");
    group.bench_function("sha256_of_token_baseline", |b| {
        b.iter(|| TokenHash::of(black_box(token.expose())));
    });
    group.bench_function("validate_cached", |b| {
        b.to_async(&rt).iter(|| async {
            cached
                .validate(black_box(token.expose()))
                .await
                .expect("valid")
        });
    });
    group.bench_function("authenticate_request_cookie", |b| {
        b.to_async(&rt).iter(|| async {
            let authn = auth.authenticate(black_box(&headers)).await;
            assert!(authn.principal.is_some());
            authn
        });
    });
    // What the adapters run: the answer without the async machinery, and the async path
    // when the store is needed (here: once a second, when the cache entry goes stale).
    group.bench_function("authenticate_cached_cookie", |b| {
        b.iter(|| {
            let authn = auth
                .authenticate_cached(black_box(&headers))
                .unwrap_or_else(|| rt.block_on(auth.authenticate(&headers)));
            assert!(authn.principal.is_some());
            authn
        });
    });
    group.bench_function("validate_store_read_sqlite", |b| {
        b.to_async(&rt).iter(|| async {
            uncached
                .validate(black_box(token.expose()))
                .await
                .expect("valid")
        });
    });
    group.bench_function("authenticate_request_bearer_eddsa", |b| {
        b.to_async(&rt).iter(|| async {
            let authn = token_auth.authenticate(black_box(&bearer_headers)).await;
            assert!(authn.principal.is_some());
            authn
        });
    });
    group.bench_function("authenticate_cached_bearer_eddsa", |b| {
        b.iter(|| {
            let authn = token_auth
                .authenticate_cached(black_box(&bearer_headers))
                .unwrap_or_else(|| rt.block_on(token_auth.authenticate(&bearer_headers)));
            assert!(authn.principal.is_some());
            authn
        });
    });
    group.bench_function("jsonwebtoken_decode_eddsa_baseline", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Claims>(black_box(&jws), &decoding_key, &validation)
                .expect("valid")
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
