//! Hashes made by other implementations, committed, verify without Python.
//!
//! Made with Python's `bcrypt` 5.0.0 and `argon2-cffi` 25.1.0 by
//! `tests/interop/password_interop.py make` (the live round trip is `password_interop.rs`).

use keystead::{PasswordConfig, PasswordHasher, SecretString, Verified};

const HORSE: &str = "correct horse battery staple";
const UMLAUTS: &str = "pässwörd";
/// 100 bytes; bcrypt read the first 72.
const LONG: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
/// 81 bytes; bcrypt's 72-byte cut falls inside an `é`.
const ACCENTS: &str = "aéééééééééééééééééééééééééééééééééééééééé";

/// (what, password, hash, needs_rehash under the default configuration)
const FIXTURES: &[(&str, &str, &str, bool)] = &[
    (
        "bcrypt 2b",
        HORSE,
        "$2b$05$0HnM7DCBVKEL2XnniSJodef1/Hd69A4uZXYeAIWlJSX43bGxqeOma",
        true,
    ),
    (
        "bcrypt 2a",
        HORSE,
        "$2a$05$0d4NtntqcE2p9U6KQomhieXbllKa9.O4F6OPArDnsVHQifJNYTGpK",
        true,
    ),
    (
        "bcrypt 2y",
        HORSE,
        "$2y$05$0HnM7DCBVKEL2XnniSJodef1/Hd69A4uZXYeAIWlJSX43bGxqeOma",
        true,
    ),
    (
        "bcrypt 2b cost 10",
        HORSE,
        "$2b$10$EDSa1lvKRelN4t.EGx9t/OXpltaRuoYHygygKsGhLaeoDP.juinQa",
        true,
    ),
    (
        "argon2-cffi defaults (argon2id m=65536 t=3 p=4)",
        HORSE,
        "$argon2id$v=19$m=65536,t=3,p=4$caNcG0MJTXhNusWdoKNBbA$0qx0ue84flpSKnzrdtEakVJ59BXQknyeRq4MfujxTLg",
        true,
    ),
    (
        "argon2id at our costs",
        HORSE,
        "$argon2id$v=19$m=19456,t=2,p=1$ZNPefPzZjHlufHMEoZ+L7A$90js8jXV+f4vV7ZitI98uui2/wDjj5k0fx2Y2b0IrYo",
        false,
    ),
    (
        "argon2i",
        HORSE,
        "$argon2i$v=19$m=8192,t=3,p=2$kaCrIfCMPCYkccgVp9EucA$+1/1AKMlsNLVmwR/fOPV+rAew0hPMM/N44NrIrr7z+I",
        true,
    ),
    (
        "argon2d",
        HORSE,
        "$argon2d$v=19$m=19456,t=2,p=1$BO6BtS0btZLVWJsTHl+erg$SofwCGnhrThXk0lbgN0316sB33PGeHkFOmG7bRshKq8",
        true,
    ),
    (
        "argon2id version 0x10",
        HORSE,
        "$argon2id$v=16$m=19456,t=2,p=1$c2l4dGVlbiBieXRlIHNsdA$Nf4pkfaH1BZjHSN/V4/7uvfURR0M5+Lvi/gE0mJJv3k",
        true,
    ),
    (
        "bcrypt 2b, non-ASCII",
        UMLAUTS,
        "$2b$05$X1AHS..0pHenkCWPKO7hX.wzXPvbs09eWvDSimI3uiWN8qS1tha0K",
        true,
    ),
    (
        "argon2-cffi defaults, non-ASCII",
        UMLAUTS,
        "$argon2id$v=19$m=65536,t=3,p=4$2G9JbpeYFqBKQrZiTwYmMA$h0oWnJkYEeGzlcz4FcXUbIbJTG2R/ZnGxgYbr/21v0Y",
        true,
    ),
    (
        "argon2i, non-ASCII",
        UMLAUTS,
        "$argon2i$v=19$m=8192,t=3,p=2$RvFw8wxgcJ3P4FiYrVU4Ng$JUhnwumvMQp4wcNbi1rI04MLHC0uAnM46SvMbftsXws",
        true,
    ),
    (
        "bcrypt 2b of the first 72 bytes",
        LONG,
        "$2b$05$mTNQV9IvEnTOccZ8nE8Lw.Q8nUHhiZBM3A/BM6/X9PN7qTwhsSFs2",
        true,
    ),
    (
        "argon2id of all 100 bytes",
        LONG,
        "$argon2id$v=19$m=19456,t=2,p=1$Ak272MhjeHZVgchZ7pR+ZQ$UmsQV/yfIH7iRumZxv4p8mOCWKxw4eHRxP3wucOFSTM",
        false,
    ),
    (
        "bcrypt 2b of 72 bytes cut mid-character",
        ACCENTS,
        "$2b$05$kpjxUUfRwBTZ4mgeQALv6uNzRWKzI8yjud9fb9ufrWKxR8lu3i2.e",
        true,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_foreign_hashes_verify() {
    let hasher = PasswordHasher::new(PasswordConfig::default());
    for &(what, password, hash, needs_rehash) in FIXTURES {
        let hash = SecretString::new(hash);
        assert_eq!(
            hasher.verify(&SecretString::new(password), &hash).await,
            Ok(Verified::Valid { needs_rehash }),
            "{what}"
        );
        assert_eq!(
            hasher
                .verify(&SecretString::new(format!("!{password}")), &hash)
                .await,
            Ok(Verified::Invalid),
            "{what}, wrong password"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_past_the_72nd_never_counted_for_an_imported_bcrypt_hash() {
    let hasher = PasswordHasher::new(PasswordConfig::default());
    let bcrypt = SecretString::new("$2b$05$mTNQV9IvEnTOccZ8nE8Lw.Q8nUHhiZBM3A/BM6/X9PN7qTwhsSFs2");
    // Another tail after the same 72 bytes passes, as it did on the system that made the hash…
    let other_tail = format!("{}{}", &LONG[..72], "y".repeat(28));
    assert_eq!(
        hasher
            .verify(&SecretString::new(other_tail.as_str()), &bcrypt)
            .await,
        Ok(Verified::Valid { needs_rehash: true })
    );
    // …but not once the password is re-hashed with argon2id over all of it.
    let rehashed = hasher.hash(&SecretString::new(LONG)).await.expect("hash");
    assert_eq!(
        hasher
            .verify(&SecretString::new(other_tail), &rehashed)
            .await,
        Ok(Verified::Invalid)
    );
    // 71 bytes are not 72.
    assert_eq!(
        hasher
            .verify(&SecretString::new(&LONG[..71]), &bcrypt)
            .await,
        Ok(Verified::Invalid)
    );
}
