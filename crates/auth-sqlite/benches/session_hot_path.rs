//! The session hot path: validating a session cookie's token, as every authenticated request
//! does. Uses a real SQLite file behind the session manager (the cache-miss case reads it).
//!
//! `cargo bench -p auth-sqlite --bench session_hot_path`

use std::hint::black_box;
use std::sync::Arc;

use auth_core::session::{SessionConfig, SessionManager, SessionMeta};
use auth_core::{AuthStore, Email, NewUser, SystemClock, TokenHash, User, UserId};
use auth_sqlite::SqliteStore;
use criterion::{Criterion, criterion_group, criterion_main};
use time::Duration;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cached, uncached, token) = rt.block_on(async {
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
            created_at: auth_core::Clock::now(&SystemClock),
        };
        store
            .create_user(&NewUser {
                user: user.clone(),
                password_hash: None,
            })
            .await
            .expect("user");
        let cached = SessionManager::new(
            store.clone(),
            Arc::new(SystemClock),
            SessionConfig::default(),
        );
        // A TTL far below one iteration's time: every validation reads the store.
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
        (cached, uncached, created.token)
    });

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
    group.bench_function("validate_store_read_sqlite", |b| {
        b.to_async(&rt).iter(|| async {
            uncached
                .validate(black_box(token.expose()))
                .await
                .expect("valid")
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
