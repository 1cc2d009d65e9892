//! Password hashing costs: argon2id hash and verify at the default costs (19456 KiB, t=2, p=1),
//! the dummy verification of unknown users, an imported bcrypt-10 hash for comparison, and the
//! bare `argon2` crate as a baseline.
//!
//! `cargo bench -p keystead --bench password`. Each figure includes the hop to tokio's
//! blocking pool and the concurrency permit, as a request pays them.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keystead::{PasswordConfig, PasswordHasher, SecretString};

const PASSWORD: &str = "correct horse battery staple";
/// Made by Python's `bcrypt` 5.0 (`bcrypt.hashpw(PASSWORD, bcrypt.gensalt(10))`).
const BCRYPT_10: &str = "$2b$10$EDSa1lvKRelN4t.EGx9t/OXpltaRuoYHygygKsGhLaeoDP.juinQa";

fn password(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a tokio runtime");
    let hasher = PasswordHasher::new(PasswordConfig::default());
    let password = SecretString::new(PASSWORD);
    let ours = rt.block_on(hasher.hash(&password)).expect("hash");
    let bcrypt = SecretString::new(BCRYPT_10);

    let mut group = c.benchmark_group("password");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("argon2id_hash_default", |b| {
        b.iter(|| {
            rt.block_on(hasher.hash(black_box(&password)))
                .expect("hash")
        });
    });
    group.bench_function("argon2id_verify_default", |b| {
        b.iter(|| {
            let outcome = rt.block_on(hasher.verify(black_box(&password), &ours));
            assert!(outcome.expect("verify").is_valid());
        });
    });
    group.bench_function("argon2id_verify_dummy", |b| {
        b.iter(|| {
            rt.block_on(hasher.verify_dummy(black_box(&password)))
                .expect("dummy")
        });
    });
    group.bench_function("bcrypt10_verify_imported", |b| {
        b.iter(|| {
            let outcome = rt.block_on(hasher.verify(black_box(&password), &bcrypt));
            assert!(outcome.expect("verify").is_valid());
        });
    });
    // The same argon2id computation without our wrapper (no permit, no blocking-pool hop, no
    // pooled and wiped buffer): what the wrapper costs is the difference.
    group.bench_function("argon2id_raw_crate_baseline", |b| {
        let argon2 = argon2::Argon2::default();
        let mut out = [0u8; 32];
        b.iter(|| {
            argon2
                .hash_password_into(
                    black_box(PASSWORD.as_bytes()),
                    b"sixteen byte slt",
                    &mut out,
                )
                .expect("argon2");
        });
    });
    group.finish();
}

criterion_group!(benches, password);
criterion_main!(benches);
