//! Password hashing: argon2id in PHC strings, run off the async workers with bounded concurrency.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use keystead::SecretString;
//! use keystead::password::{PasswordConfig, PasswordHasher, Verified};
//!
//! let hasher = PasswordHasher::new(PasswordConfig::default());
//! let password = SecretString::new("correct horse battery staple");
//!
//! let hash = hasher.hash(&password).await?;
//! assert!(hash.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
//!
//! let outcome = hasher.verify(&password, &hash).await?;
//! assert_eq!(outcome, Verified::Valid { needs_rehash: false });
//! let outcome = hasher.verify(&SecretString::new("guess"), &hash).await?;
//! assert_eq!(outcome, Verified::Invalid);
//! # Ok(()) }
//! ```
//!
//! # What it does
//! - **Hashes** with argon2id, version 0x13, 19456 KiB, 2 passes, 1 lane by default (OWASP's
//!   recommendation, the `argon2` crate's default), a 16-byte random salt and a 32-byte output,
//!   written as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//! - **Verifies** our hashes, argon2 hashes of any other parameters, variant (argon2i,
//!   argon2d) or version (0x10, 0x13), and imported bcrypt hashes (`$2a$`, `$2b$`, `$2y$`).
//!   A successful verification says whether the hash should be replaced by a fresh one of the
//!   configured kind ([`Verified::Valid::needs_rehash`]): the caller re-hashes on that sign-in.
//! - **Bounds the work**: every hash and verification runs on tokio's blocking pool, under a
//!   semaphore of [`PasswordConfig::max_concurrent`] permits taken *before* the blocking task is
//!   spawned and held until it ends (even if the caller stops waiting). A burst of sign-ins waits
//!   in line instead of starving the async workers or allocating one 19 MiB block per request.
//!   Passwords longer than [`PasswordConfig::max_password_bytes`] are refused before any work,
//!   and stored hashes that ask for more than the configured verification limits are refused
//!   rather than run (a hash is data; data must not choose to allocate 4 GiB).
//!   The line of callers waiting for a permit is bounded ([`PasswordConfig::max_queued`],
//!   default 16 per permit): past it a call fails at once with [`PasswordError::Busy`] (the
//!   routes answer 503 `unavailable` with `Retry-After`) instead of waiting without bound.
//!   Rate limits upstream (per address, before any hashing) keep one client from filling it.
//!
//! # Memory
//! Hashes of the configured size share a pool of argon2 work buffers, one per permit at most:
//! the resident memory spent on hashing is at most `max_concurrent × memory_kib` KiB, whatever
//! the allocator does with freed blocks, and it is kept for reuse once allocated. Every buffer
//! is wiped when a computation ends, so the memory of a past hash (from which a password guess
//! could be checked cheaply) does not linger. Verifying an imported hash of another size takes
//! a temporary buffer, wiped and freed afterwards.
//!
//! # bcrypt and its 72-byte limit
//! bcrypt only ever reads the first 72 bytes of a password. An imported bcrypt hash is verified
//! exactly as the system that made it did: against the first 72 bytes of the password (cut by
//! bytes, not characters, as every bcrypt implementation does). This crate truncates explicitly,
//! so the behaviour does not depend on the bcrypt crate's choice, and always answers
//! `needs_rehash: true`, so the user moves to argon2id over the whole password at that sign-in.
//! Refusing longer passwords instead would lock out users whose old system truncated silently.
//! `$2x$` hashes (crypt_blowfish's sign-extension bug) and `$2$` are not supported.
//!
//! # Timing
//! [`PasswordHasher::verify_dummy`] runs one verification of the configured cost against a
//! hash that matches nothing, so that "no such user" costs as much as "wrong password".
//!
//! Passwords are hashed as their UTF-8 bytes, without Unicode normalization, as Python's
//! `argon2-cffi` and `bcrypt` do.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::secret::{SecretString, constant_time_eq, fill_random};

/// Default argon2 memory cost in KiB (19 MiB).
pub const DEFAULT_MEMORY_KIB: u32 = 19_456;
/// Default argon2 passes over memory.
pub const DEFAULT_ITERATIONS: u32 = 2;
/// Default argon2 lanes.
pub const DEFAULT_PARALLELISM: u32 = 1;
/// Default longest accepted password, in bytes.
pub const DEFAULT_MAX_PASSWORD_BYTES: usize = 1024;
/// Callers that may wait per permit by default ([`PasswordConfig::max_queued`]).
pub const QUEUED_PER_PERMIT: usize = 16;
/// Bytes of salt in the hashes we make.
pub const SALT_BYTES: usize = 16;
/// Bytes of output in the hashes we make.
pub const OUTPUT_BYTES: usize = 32;
/// The number of password bytes bcrypt reads; the rest is ignored.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// Default limit on the memory of a stored argon2 hash we agree to verify (256 MiB).
pub const DEFAULT_MAX_VERIFY_MEMORY_KIB: u32 = 262_144;
/// Default limit on the passes of a stored argon2 hash we agree to verify.
pub const DEFAULT_MAX_VERIFY_ITERATIONS: u32 = 16;
/// Default limit on the lanes of a stored argon2 hash we agree to verify.
pub const DEFAULT_MAX_VERIFY_PARALLELISM: u32 = 16;
/// Default limit on the cost of a stored bcrypt hash we agree to verify (2^16 rounds, ~5 s).
pub const DEFAULT_MAX_VERIFY_BCRYPT_COST: u32 = 16;

/// How passwords are hashed, and how much work may run at once.
///
/// Every setting has a safe default; the fallible setters refuse what cannot work.
///
/// ```
/// use keystead::password::PasswordConfig;
///
/// let config = PasswordConfig::default()
///     .argon2_params(65_536, 3, 4)?
///     .max_concurrent(8)?
///     .max_password_bytes(256)?;
/// assert_eq!(config.memory_kib(), 65_536);
/// assert!(PasswordConfig::default().max_concurrent(0).is_err());
/// # Ok::<(), keystead::password::PasswordConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct PasswordConfig {
    params: Params,
    max_concurrent: usize,
    max_queued: Option<usize>,
    max_password_bytes: usize,
    max_verify_memory_kib: u32,
    max_verify_iterations: u32,
    max_verify_parallelism: u32,
    max_verify_bcrypt_cost: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            params: default_params(),
            max_concurrent: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            max_queued: None,
            max_password_bytes: DEFAULT_MAX_PASSWORD_BYTES,
            max_verify_memory_kib: DEFAULT_MAX_VERIFY_MEMORY_KIB,
            max_verify_iterations: DEFAULT_MAX_VERIFY_ITERATIONS,
            max_verify_parallelism: DEFAULT_MAX_VERIFY_PARALLELISM,
            max_verify_bcrypt_cost: DEFAULT_MAX_VERIFY_BCRYPT_COST,
        }
    }
}

fn default_params() -> Params {
    match Params::new(
        DEFAULT_MEMORY_KIB,
        DEFAULT_ITERATIONS,
        DEFAULT_PARALLELISM,
        Some(OUTPUT_BYTES),
    ) {
        Ok(params) => params,
        // The argon2 crate's own default; a unit test pins that the constants are valid.
        Err(_) => Params::DEFAULT,
    }
}

impl PasswordConfig {
    /// The defaults: argon2id 19456 KiB, t=2, p=1; one permit per CPU; 1024-byte passwords.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the argon2id cost of new hashes: memory in KiB, passes, lanes.
    ///
    /// # Errors
    /// [`PasswordConfigError::InvalidArgon2Params`] if argon2 refuses them (memory below
    /// 8 KiB per lane, zero passes or lanes, more than 2^24 − 1 lanes).
    pub fn argon2_params(
        mut self,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Self, PasswordConfigError> {
        self.params = Params::new(memory_kib, iterations, parallelism, Some(OUTPUT_BYTES))
            .map_err(|e| PasswordConfigError::InvalidArgon2Params {
                reason: e.to_string(),
            })?;
        Ok(self)
    }

    /// Sets how many hashes or verifications may run at once (default: the number of CPUs).
    /// Each one in flight holds `memory_kib` KiB.
    ///
    /// # Errors
    /// [`PasswordConfigError::InvalidMaxConcurrent`] for 0 or more than tokio's semaphore holds.
    pub fn max_concurrent(mut self, permits: usize) -> Result<Self, PasswordConfigError> {
        if permits == 0 || permits > Semaphore::MAX_PERMITS {
            return Err(PasswordConfigError::InvalidMaxConcurrent { value: permits });
        }
        self.max_concurrent = permits;
        Ok(self)
    }

    /// Sets how many callers may wait for a permit while every permit is taken (default:
    /// [`QUEUED_PER_PERMIT`] × [`max_concurrent`](Self::max_concurrent)). Past it a hash or
    /// verification fails at once with [`PasswordError::Busy`]: a burst is shed (503 with
    /// `Retry-After`) rather than queued without bound. 0 queues no one.
    pub fn max_queued(mut self, waiting: usize) -> Self {
        self.max_queued = Some(waiting);
        self
    }

    /// Sets the longest password accepted, in UTF-8 bytes (default 1024). Longer input is refused
    /// before any hashing, with [`PasswordError::TooLong`].
    ///
    /// # Errors
    /// [`PasswordConfigError::InvalidMaxPasswordBytes`] for 0.
    pub fn max_password_bytes(mut self, bytes: usize) -> Result<Self, PasswordConfigError> {
        if bytes == 0 {
            return Err(PasswordConfigError::InvalidMaxPasswordBytes);
        }
        self.max_password_bytes = bytes;
        Ok(self)
    }

    /// Sets the most memory (KiB) a stored argon2 hash may ask for and still be verified
    /// (default 256 MiB). Never less than the configured memory cost, whatever is set here.
    pub fn max_verify_memory_kib(mut self, memory_kib: u32) -> Self {
        self.max_verify_memory_kib = memory_kib;
        self
    }

    /// Sets the most passes a stored argon2 hash may ask for (default 16). Never less than the
    /// configured passes.
    pub fn max_verify_iterations(mut self, iterations: u32) -> Self {
        self.max_verify_iterations = iterations;
        self
    }

    /// Sets the most lanes a stored argon2 hash may ask for (default 16). Never less than the
    /// configured lanes.
    pub fn max_verify_parallelism(mut self, parallelism: u32) -> Self {
        self.max_verify_parallelism = parallelism;
        self
    }

    /// Sets the highest cost of a stored bcrypt hash we agree to verify (default 16).
    pub fn max_verify_bcrypt_cost(mut self, cost: u32) -> Self {
        self.max_verify_bcrypt_cost = cost;
        self
    }

    /// Memory cost of new hashes, KiB.
    #[must_use]
    pub const fn memory_kib(&self) -> u32 {
        self.params.m_cost()
    }

    /// Passes of new hashes.
    #[must_use]
    pub const fn iterations(&self) -> u32 {
        self.params.t_cost()
    }

    /// Lanes of new hashes.
    #[must_use]
    pub const fn parallelism(&self) -> u32 {
        self.params.p_cost()
    }

    /// How many hashes or verifications may run at once.
    #[must_use]
    pub const fn concurrency(&self) -> usize {
        self.max_concurrent
    }

    /// How many callers may wait for a permit.
    #[must_use]
    pub fn queue_limit(&self) -> usize {
        self.max_queued
            .unwrap_or_else(|| self.max_concurrent.saturating_mul(QUEUED_PER_PERMIT))
    }

    /// The longest password accepted, in bytes.
    #[must_use]
    pub const fn password_limit(&self) -> usize {
        self.max_password_bytes
    }

    fn verify_memory_limit(&self) -> u32 {
        self.max_verify_memory_kib.max(self.memory_kib())
    }

    fn verify_iterations_limit(&self) -> u32 {
        self.max_verify_iterations.max(self.iterations())
    }

    fn verify_parallelism_limit(&self) -> u32 {
        self.max_verify_parallelism.max(self.parallelism())
    }
}

/// A setting [`PasswordConfig`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordConfigError {
    /// argon2 refuses these costs.
    #[error("invalid argon2 parameters: {reason}")]
    InvalidArgon2Params {
        /// Why, as the argon2 crate says it.
        reason: String,
    },
    /// The concurrency limit must be at least 1 (and fit a semaphore).
    #[error(
        "max_concurrent must be between 1 and {}, not {value}",
        Semaphore::MAX_PERMITS
    )]
    InvalidMaxConcurrent {
        /// The refused value.
        value: usize,
    },
    /// The password length limit must be at least 1 byte.
    #[error("max_password_bytes must be at least 1")]
    InvalidMaxPasswordBytes,
}

/// Why a password could not be hashed or checked.
///
/// At sign-in, every variant means "invalid credentials" to the client; the variants exist for
/// logs and for the set-password path (where [`PasswordError::TooLong`] is the user's to fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password is longer than [`PasswordConfig::max_password_bytes`]; nothing was hashed.
    #[error("the password is longer than {max} bytes")]
    TooLong {
        /// The limit, in bytes.
        max: usize,
    },
    /// The stored hash is not one we can verify (malformed, unknown algorithm, `$2x$`, keyed).
    #[error("unsupported password hash: {reason}")]
    UnsupportedHash {
        /// What is wrong with it; never the hash itself.
        reason: &'static str,
    },
    /// The stored hash asks for more work than the configured verification limits allow.
    #[error("the password hash asks for more work than allowed: {reason}")]
    HashTooCostly {
        /// Which limit it exceeds.
        reason: &'static str,
    },
    /// Every permit is taken and the line of waiters is full ([`PasswordConfig::max_queued`]):
    /// nothing was hashed; try again shortly (503 `unavailable` with `Retry-After`).
    #[error("password hashing is busy: {queued} calls are waiting already")]
    Busy {
        /// The queue limit that was reached.
        queued: usize,
    },
    /// Hashing failed on our side (the blocking task panicked, the runtime is shutting down).
    #[error("password hashing failed: {reason}")]
    Internal {
        /// What failed.
        reason: &'static str,
    },
}

/// The outcome of a verification that could be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verified {
    /// The password matches.
    Valid {
        /// The hash is not of the configured kind (bcrypt, argon2i/argon2d, other costs or
        /// version): hash the password again and store the new hash.
        needs_rehash: bool,
    },
    /// The password does not match.
    Invalid,
}

impl Verified {
    /// Whether the password matched.
    #[must_use]
    pub const fn is_valid(self) -> bool {
        matches!(self, Self::Valid { .. })
    }
}

/// Hashes and verifies passwords on tokio's blocking pool, at most
/// [`PasswordConfig::max_concurrent`] at a time.
///
/// Cheap to clone: clones share the limit, the counters and the memory pool. The methods must
/// be called within a tokio runtime.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    config: PasswordConfig,
    semaphore: Arc<Semaphore>,
    /// Callers waiting for a permit right now.
    queued: AtomicUsize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    /// Work buffers of the configured size, at most one per permit.
    pool: Mutex<Vec<Vec<Block>>>,
    pool_block_count: usize,
    /// An argon2id hash of the configured kind with a random output: matches no password.
    dummy: String,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("config", &self.inner.config)
            .field("in_flight", &self.in_flight())
            .field("peak_in_flight", &self.peak_in_flight())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with this configuration.
    #[must_use]
    pub fn new(config: PasswordConfig) -> Self {
        let mut salt = [0u8; SALT_BYTES];
        fill_random(&mut salt);
        let mut output = [0u8; OUTPUT_BYTES];
        fill_random(&mut output);
        let dummy = phc_string(&config.params, &salt, &output);
        Self {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(config.max_concurrent)),
                queued: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                peak_in_flight: AtomicUsize::new(0),
                pool: Mutex::new(Vec::new()),
                pool_block_count: config.params.block_count(),
                dummy,
                config,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PasswordConfig {
        &self.inner.config
    }

    /// Hashes or verifications running right now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Callers waiting for a permit right now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::SeqCst)
    }

    /// The most hashes or verifications that ever ran at once on this hasher (and its clones).
    #[must_use]
    pub fn peak_in_flight(&self) -> usize {
        self.inner.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Hashes a password with the configured argon2id costs and a fresh random salt; returns
    /// the PHC string.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`] before any work; [`PasswordError::Internal`] if the blocking
    /// task could not run.
    pub async fn hash(&self, password: &SecretString) -> Result<SecretString, PasswordError> {
        self.check_length(password)?;
        let password = password.clone();
        self.run(move |inner| inner.hash_blocking(password.expose().as_bytes()))
            .await
    }

    /// Checks a password against a stored hash (ours, another argon2, or an imported bcrypt).
    ///
    /// # Errors
    /// [`PasswordError::TooLong`] before any work; [`PasswordError::UnsupportedHash`] for a hash
    /// we cannot read; [`PasswordError::HashTooCostly`] for one beyond the verification limits;
    /// [`PasswordError::Internal`] if the blocking task could not run. A caller at sign-in
    /// treats every error as invalid credentials (and logs it).
    pub async fn verify(
        &self,
        password: &SecretString,
        hash: &SecretString,
    ) -> Result<Verified, PasswordError> {
        self.check_length(password)?;
        let password = password.clone();
        let hash = hash.clone();
        self.run(move |inner| inner.verify_blocking(password.expose().as_bytes(), hash.expose()))
            .await
    }

    /// Spends what verifying against a hash of the configured kind costs, and answers
    /// [`Verified::Invalid`]: call it when there is no user (or no password) to check against,
    /// so that the answer takes as long as a wrong password does.
    ///
    /// # Errors
    /// As [`PasswordHasher::verify`]: a too-long password is refused at once, in both cases.
    pub async fn verify_dummy(&self, password: &SecretString) -> Result<Verified, PasswordError> {
        self.check_length(password)?;
        let password = password.clone();
        self.run(move |inner| inner.verify_blocking(password.expose().as_bytes(), &inner.dummy))
            .await
            // A match would need a collision with a random 256-bit output: the answer is no.
            .map(|_: Verified| Verified::Invalid)
    }

    fn check_length(&self, password: &SecretString) -> Result<(), PasswordError> {
        let max = self.inner.config.max_password_bytes;
        if password.expose().len() > max {
            return Err(PasswordError::TooLong { max });
        }
        Ok(())
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit moves into the blocking
    /// task, so it is held until the work ends even if the caller stops waiting.
    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, PasswordError> + Send + 'static,
    {
        let closed = |_| PasswordError::Internal {
            reason: "the concurrency limiter is closed",
        };
        let permit = match Arc::clone(&self.inner.semaphore).try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(PasswordError::Internal {
                    reason: "the concurrency limiter is closed",
                });
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                // Join the line only while it has room; the slot is given back however the
                // wait ends (a permit, an error, a caller that stops waiting).
                let limit = self.inner.config.queue_limit();
                let joined =
                    self.inner
                        .queued
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            (n < limit).then_some(n + 1)
                        });
                if joined.is_err() {
                    crate::telemetry::hash_shed();
                    return Err(PasswordError::Busy { queued: limit });
                }
                let _in_line = Queued(&self.inner.queued);
                let waiting = std::time::Instant::now();
                let permit = Arc::clone(&self.inner.semaphore)
                    .acquire_owned()
                    .await
                    .map_err(closed)?;
                crate::telemetry::hash_waited(waiting.elapsed());
                permit
            }
        };
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Declared after the permit, so dropped before it: `in_flight` never exceeds the
            // number of permits.
            let _running = InFlight::enter(&inner);
            work(&inner)
        })
        .await
        .map_err(|_| PasswordError::Internal {
            reason: "the hashing task did not complete",
        })?
    }
}

/// A caller's place in the line for a permit, given back when dropped.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a computation in flight for as long as it lives (also through a panic).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> Self {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(&inner.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    fn hash_blocking(&self, password: &[u8]) -> Result<SecretString, PasswordError> {
        let params = &self.config.params;
        let mut salt = [0u8; SALT_BYTES];
        fill_random(&mut salt);
        let mut output = Zeroizing::new([0u8; OUTPUT_BYTES]);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        self.with_memory(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, &salt, output.as_mut(), blocks)
        })
        .map_err(|_| PasswordError::Internal {
            reason: "argon2 refused to hash",
        })?;
        Ok(SecretString::new(phc_string(
            params,
            &salt,
            output.as_ref(),
        )))
    }

    fn verify_blocking(&self, password: &[u8], hash: &str) -> Result<Verified, PasswordError> {
        if hash.starts_with("$argon2") {
            self.verify_argon2(password, hash)
        } else if hash.starts_with("$2") {
            self.verify_bcrypt(password, hash)
        } else {
            Err(PasswordError::UnsupportedHash {
                reason: "not an argon2 or bcrypt hash",
            })
        }
    }

    fn verify_argon2(&self, password: &[u8], hash: &str) -> Result<Verified, PasswordError> {
        let unsupported = |reason| PasswordError::UnsupportedHash { reason };
        let phc = PasswordHash::new(hash).map_err(|_| unsupported("malformed PHC string"))?;
        let algorithm = Algorithm::try_from(phc.algorithm)
            .map_err(|_| unsupported("unknown argon2 variant"))?;
        // As libargon2 reads it: a PHC string without `v=` is of version 0x10.
        let version = match phc.version {
            None => Version::V0x10,
            Some(v) => Version::try_from(v).map_err(|_| unsupported("unknown argon2 version"))?,
        };
        // argon2's `Params::new` computes `p * 8` unchecked: past its own lane limit that
        // overflows (a panic in debug builds), so such a hash is refused before it gets there.
        if phc
            .params
            .get_decimal("p")
            .is_some_and(|p| p > Params::MAX_P_COST)
        {
            return Err(unsupported("invalid argon2 parameters"));
        }
        let params =
            Params::try_from(&phc).map_err(|_| unsupported("invalid argon2 parameters"))?;
        if !params.keyid().is_empty() {
            return Err(unsupported("keyed argon2 hash; no key is configured"));
        }
        let expected = phc.hash.ok_or(unsupported("argon2 hash without output"))?;
        let salt = phc.salt.ok_or(unsupported("argon2 hash without salt"))?;
        let mut salt_buf = [0u8; 64];
        let salt = salt
            .decode_b64(&mut salt_buf)
            .map_err(|_| unsupported("invalid argon2 salt"))?;

        let config = &self.config;
        if params.m_cost() > config.verify_memory_limit() {
            return Err(PasswordError::HashTooCostly {
                reason: "argon2 memory cost",
            });
        }
        if params.t_cost() > config.verify_iterations_limit() {
            return Err(PasswordError::HashTooCostly {
                reason: "argon2 passes",
            });
        }
        if params.p_cost() > config.verify_parallelism_limit() {
            return Err(PasswordError::HashTooCostly {
                reason: "argon2 lanes",
            });
        }

        let mut output = Zeroizing::new(vec![0u8; expected.len()]);
        let argon2 = Argon2::new(algorithm, version, params.clone());
        self.with_memory(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, salt, output.as_mut_slice(), blocks)
        })
        .map_err(|_| unsupported("argon2 refused the hash's parameters"))?;

        if !constant_time_eq(output.as_slice(), expected.as_bytes()) {
            return Ok(Verified::Invalid);
        }
        let ours = &config.params;
        let needs_rehash = algorithm != Algorithm::Argon2id
            || version != Version::V0x13
            || params.m_cost() != ours.m_cost()
            || params.t_cost() != ours.t_cost()
            || params.p_cost() != ours.p_cost()
            || expected.len() != OUTPUT_BYTES
            || salt.len() < SALT_BYTES
            || !params.data().is_empty();
        Ok(Verified::Valid { needs_rehash })
    }

    fn verify_bcrypt(&self, password: &[u8], hash: &str) -> Result<Verified, PasswordError> {
        let unsupported = |reason| PasswordError::UnsupportedHash { reason };
        let rest = ["$2a$", "$2b$", "$2y$"]
            .iter()
            .find_map(|prefix| hash.strip_prefix(prefix))
            .ok_or(unsupported("unsupported bcrypt variant"))?;
        let cost: u32 = rest
            .get(..2)
            .and_then(|c| c.parse().ok())
            .ok_or(unsupported("malformed bcrypt cost"))?;
        if !(4..=31).contains(&cost) {
            return Err(unsupported("bcrypt cost out of range"));
        }
        if cost > self.config.max_verify_bcrypt_cost {
            return Err(PasswordError::HashTooCostly {
                reason: "bcrypt cost",
            });
        }
        // What the system that made the hash read: the first 72 bytes (see the module docs).
        let read = &password[..password.len().min(BCRYPT_MAX_PASSWORD_BYTES)];
        // bcrypt compares the outputs in constant time (`subtle`).
        match bcrypt::verify(read, hash) {
            Ok(true) => Ok(Verified::Valid { needs_rehash: true }),
            Ok(false) => Ok(Verified::Invalid),
            Err(bcrypt::BcryptError::InvalidHash(_) | bcrypt::BcryptError::CostNotAllowed(_)) => {
                Err(unsupported("malformed bcrypt hash"))
            }
            Err(_) => Err(PasswordError::Internal {
                reason: "bcrypt failed",
            }),
        }
    }

    /// Runs `work` with an argon2 work buffer of `block_count` blocks, from the pool when it is
    /// of the configured size, and wipes the buffer afterwards.
    fn with_memory<R>(&self, block_count: usize, work: impl FnOnce(&mut [Block]) -> R) -> R {
        if block_count != self.pool_block_count {
            let mut blocks = vec![Block::new(); block_count];
            let result = work(&mut blocks);
            wipe(&mut blocks);
            return result;
        }
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut blocks = pooled.unwrap_or_else(|| vec![Block::new(); block_count]);
        let result = work(&mut blocks);
        wipe(&mut blocks);
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(blocks);
        result
    }
}

/// Overwrites argon2's memory: from it, a password guess could be checked without the
/// memory-hard work.
fn wipe(blocks: &mut [Block]) {
    blocks.fill(Block::new());
    // Keeps the writes even when the buffer is freed right after.
    std::hint::black_box(blocks);
}

/// `$argon2id$v=19$m=…,t=…,p=…$<salt>$<output>`, base64 without padding as PHC says.
fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(output),
    )
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{Output, ParamsString, SaltString};

    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::new(s)
    }

    /// Small costs for the tests that are not about the costs.
    fn cheap() -> PasswordHasher {
        PasswordHasher::new(
            PasswordConfig::default()
                .argon2_params(64, 1, 1)
                .unwrap()
                .max_concurrent(2)
                .unwrap(),
        )
    }

    /// With every permit taken, the line of waiters is bounded (16 per permit by default):
    /// one more caller is refused at once with `Busy`, never left waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_instead_of_waiting() {
        let hasher = PasswordHasher::new(
            PasswordConfig::default()
                .argon2_params(64, 1, 1)
                .unwrap()
                .max_concurrent(1)
                .unwrap(),
        );
        // Every permit held, as by long-running hashes.
        let held = Arc::clone(&hasher.inner.semaphore)
            .acquire_owned()
            .await
            .unwrap();
        let waiters: Vec<_> = (0..16)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.verify_dummy(&secret("guess")).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            hasher.verify_dummy(&secret("one too many")),
        )
        .await
        .expect("answered at once, not queued without bound");
        let err = refused.expect_err("the queue is full");
        assert!(err.to_string().contains("busy"), "{err}");
        drop(held);
        for waiter in waiters {
            assert_eq!(
                waiter.await.unwrap(),
                Ok(Verified::Invalid),
                "queued ones run"
            );
        }
    }

    #[test]
    fn defaults_are_owasp_argon2id() {
        let config = PasswordConfig::default();
        assert_eq!(
            (
                config.memory_kib(),
                config.iterations(),
                config.parallelism()
            ),
            (19_456, 2, 1)
        );
        assert_eq!(config.params.output_len(), Some(OUTPUT_BYTES));
        assert_eq!(config.password_limit(), 1024);
        assert!(config.concurrency() >= 1);
        assert_eq!(
            Params::new(
                DEFAULT_MEMORY_KIB,
                DEFAULT_ITERATIONS,
                DEFAULT_PARALLELISM,
                Some(OUTPUT_BYTES)
            )
            .unwrap()
            .m_cost(),
            Params::DEFAULT.m_cost()
        );
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(matches!(
            PasswordConfig::default().argon2_params(4, 1, 1),
            Err(PasswordConfigError::InvalidArgon2Params { .. })
        ));
        assert!(PasswordConfig::default().argon2_params(64, 0, 1).is_err());
        assert!(PasswordConfig::default().argon2_params(64, 1, 0).is_err());
        assert!(PasswordConfig::default().argon2_params(64, 1, 9).is_err());
        assert_eq!(
            PasswordConfig::default().max_concurrent(0).unwrap_err(),
            PasswordConfigError::InvalidMaxConcurrent { value: 0 }
        );
        assert_eq!(
            PasswordConfig::default().max_password_bytes(0).unwrap_err(),
            PasswordConfigError::InvalidMaxPasswordBytes
        );
    }

    #[tokio::test]
    async fn default_hash_is_a_phc_argon2id_string_that_verifies() {
        let hasher = PasswordHasher::new(PasswordConfig::default());
        let hash = hasher.hash(&secret("correct horse")).await.unwrap();
        let s = hash.expose();
        assert!(s.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{s}");
        // Parses as PHC, with a 16-byte salt and a 32-byte output.
        let phc = PasswordHash::new(s).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(phc.salt.unwrap().decode_b64(&mut buf).unwrap().len(), 16);
        assert_eq!(phc.hash.unwrap().len(), 32);

        assert_eq!(
            hasher
                .verify(&secret("correct horse"), &hash)
                .await
                .unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify(&secret("correct horsf"), &hash)
                .await
                .unwrap(),
            Verified::Invalid
        );
        assert_eq!(
            hasher.verify(&secret(""), &hash).await.unwrap(),
            Verified::Invalid
        );
        // Salted: the same password hashes differently each time.
        let again = hasher.hash(&secret("correct horse")).await.unwrap();
        assert_ne!(hash, again);
    }

    #[tokio::test]
    async fn the_argon2_crate_agrees_with_our_phc_strings() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = cheap();
        let ours = hasher.hash(&secret("pässwörd")).await.unwrap();
        let phc = PasswordHash::new(ours.expose()).unwrap();
        assert!(
            Argon2::default()
                .verify_password("pässwörd".as_bytes(), &phc)
                .is_ok()
        );
        // And the other way: the crate's own PHC output verifies here.
        let params = Params::new(64, 1, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"p\xc3\xa4sswort",
                &SaltString::encode_b64(&[7; 16]).unwrap(),
            )
            .unwrap()
            .to_string();
        assert_eq!(
            hasher
                .verify(&secret("pässwort"), &secret(&theirs))
                .await
                .unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn other_kinds_of_hash_verify_and_ask_for_a_rehash() {
        let hasher = cheap();
        let pw = b"hunter2";
        let salt = [9u8; 16];
        let make = |alg, version, m, t, p, out_len: usize| {
            let params = Params::new(m, t, p, Some(out_len)).unwrap();
            let mut out = vec![0u8; out_len];
            Argon2::new(alg, version, params.clone())
                .hash_password_into(pw, &salt, &mut out)
                .unwrap();
            let v: u32 = version.into();
            let salt_string = SaltString::encode_b64(&salt).unwrap();
            let phc = PasswordHash {
                algorithm: alg.ident(),
                version: Some(v),
                params: ParamsString::try_from(&params).unwrap(),
                salt: Some(salt_string.as_salt()),
                hash: Some(Output::new(&out).unwrap()),
            };
            secret(&phc.to_string())
        };
        let id = Algorithm::Argon2id;
        let cases = [
            (make(id, Version::V0x13, 64, 1, 1, 32), false),
            (make(Algorithm::Argon2i, Version::V0x13, 64, 1, 1, 32), true),
            (make(Algorithm::Argon2d, Version::V0x13, 64, 1, 1, 32), true),
            (make(id, Version::V0x10, 64, 1, 1, 32), true),
            (make(id, Version::V0x13, 128, 1, 1, 32), true),
            (make(id, Version::V0x13, 64, 2, 1, 32), true),
            (make(id, Version::V0x13, 64, 1, 2, 32), true),
            (make(id, Version::V0x13, 64, 1, 1, 16), true),
        ];
        for (hash, needs_rehash) in cases {
            assert_eq!(
                hasher.verify(&secret("hunter2"), &hash).await.unwrap(),
                Verified::Valid { needs_rehash },
                "{}",
                hash.expose()
            );
            assert_eq!(
                hasher.verify(&secret("hunter3"), &hash).await.unwrap(),
                Verified::Invalid
            );
        }

        // A PHC string without `v=` is version 0x10, as libargon2 reads it.
        let v10 = make(id, Version::V0x10, 64, 1, 1, 32);
        let without_version = secret(&v10.expose().replace("$v=16", ""));
        assert_eq!(
            hasher
                .verify(&secret("hunter2"), &without_version)
                .await
                .unwrap(),
            Verified::Valid { needs_rehash: true }
        );

        // bcrypt, in its three accepted spellings.
        let bcrypt_2b = bcrypt::hash("hunter2", 4).unwrap();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let h = secret(&format!("{prefix}{}", &bcrypt_2b[4..]));
            assert_eq!(
                hasher.verify(&secret("hunter2"), &h).await.unwrap(),
                Verified::Valid { needs_rehash: true }
            );
            assert_eq!(
                hasher.verify(&secret("hunter3"), &h).await.unwrap(),
                Verified::Invalid
            );
        }
    }

    #[tokio::test]
    async fn bcrypt_reads_the_first_72_bytes_as_its_maker_did() {
        let hasher = cheap();
        let long = "x".repeat(100);
        // What a truncating system stored for `long`.
        let stored = secret(&bcrypt::hash(&long.as_bytes()[..72], 4).unwrap());
        assert_eq!(
            hasher.verify(&secret(&long), &stored).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        // Inherent to bcrypt: bytes after the 72nd never mattered to that hash. The rehash
        // on this sign-in makes them matter from now on.
        let other_tail = format!("{}{}", "x".repeat(72), "y".repeat(28));
        assert!(
            hasher
                .verify(&secret(&other_tail), &stored)
                .await
                .unwrap()
                .is_valid()
        );
        assert_eq!(
            hasher
                .verify(&secret(&"x".repeat(71)), &stored)
                .await
                .unwrap(),
            Verified::Invalid
        );
        // Cut by bytes, in the middle of a character if need be (as every bcrypt does).
        let accents = "é".repeat(40); // 80 bytes
        let stored = secret(&bcrypt::hash(&accents.as_bytes()[..72], 4).unwrap());
        assert!(
            hasher
                .verify(&secret(&accents), &stored)
                .await
                .unwrap()
                .is_valid()
        );
    }

    #[tokio::test]
    async fn over_long_passwords_are_refused_before_hashing() {
        let hasher = PasswordHasher::new(PasswordConfig::default().max_password_bytes(16).unwrap());
        let long = secret(&"a".repeat(17));
        let err = hasher.hash(&long).await.unwrap_err();
        assert_eq!(err, PasswordError::TooLong { max: 16 });
        let hash = hasher.hash(&secret(&"a".repeat(16))).await.unwrap();
        assert_eq!(hasher.verify(&long, &hash).await.unwrap_err(), err);
        assert_eq!(hasher.verify_dummy(&long).await.unwrap_err(), err);
        // Refused without running: only the one hash above ran.
        assert_eq!(hasher.peak_in_flight(), 1);

        let default = PasswordHasher::new(PasswordConfig::default());
        let megabyte = secret(&"a".repeat(1 << 20));
        assert_eq!(
            default.hash(&megabyte).await.unwrap_err(),
            PasswordError::TooLong { max: 1024 }
        );
    }

    #[tokio::test]
    async fn garbage_hashes_are_an_error_not_a_panic() {
        let hasher = cheap();
        let pw = secret("hunter2");
        let good = bcrypt::hash("hunter2", 4).unwrap();
        let argon = hasher.hash(&pw).await.unwrap();
        let cases = [
            String::new(),
            "hunter2".to_owned(),
            "$argon2id$".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1$$".to_owned(),
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo".to_owned(),
            "$argon2x$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1,z=3$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1$c2Fs$aGFzaGhhc2hoYXNo".to_owned(), // 3-byte salt
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo".to_owned(),
            argon.expose().replace("$argon2id$", "$scrypt$"),
            argon.expose()[..argon.expose().len() - 5].to_owned() + "!!!!!",
            format!("$2x${}", &good[4..]),
            format!("$2${}", &good[4..]),
            format!("$2b$99{}", &good[6..]),
            format!("$2b$ab{}", &good[6..]),
            good[..59].to_owned(),
            format!("$2b$04$é{}", &good[9..]),
            "$2b$".to_owned(),
            "$2".to_owned(),
            "$argon2".to_owned(),
        ];
        for case in cases {
            let result = hasher.verify(&pw, &secret(&case)).await;
            assert!(
                matches!(result, Err(PasswordError::UnsupportedHash { .. })),
                "{case:?} gave {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn hashes_beyond_the_verification_limits_are_refused() {
        let hasher = PasswordHasher::new(
            PasswordConfig::default()
                .argon2_params(64, 1, 1)
                .unwrap()
                .max_verify_memory_kib(1024)
                .max_verify_iterations(3)
                .max_verify_parallelism(2)
                .max_verify_bcrypt_cost(5),
        );
        let pw = secret("hunter2");
        let salt = "c2FsdHNhbHRzYWx0";
        let out = "aGFzaGhhc2hoYXNo";
        for params in ["m=4194304,t=1,p=1", "m=64,t=4,p=1", "m=64,t=1,p=3"] {
            let h = secret(&format!("$argon2id$v=19${params}${salt}${out}"));
            assert!(
                matches!(
                    hasher.verify(&pw, &h).await,
                    Err(PasswordError::HashTooCostly { .. })
                ),
                "{params}"
            );
        }
        // Within the limits: verified (and wrong).
        let h = secret(&format!("$argon2id$v=19$m=1024,t=3,p=2${salt}${out}"));
        assert_eq!(hasher.verify(&pw, &h).await.unwrap(), Verified::Invalid);

        let b6 = bcrypt::hash("hunter2", 6).unwrap();
        assert!(matches!(
            hasher.verify(&pw, &secret(&b6)).await,
            Err(PasswordError::HashTooCostly { .. })
        ));
        let b5 = bcrypt::hash("hunter2", 5).unwrap();
        assert!(hasher.verify(&pw, &secret(&b5)).await.unwrap().is_valid());
    }

    #[tokio::test]
    async fn the_limits_never_refuse_our_own_hashes() {
        let hasher = PasswordHasher::new(
            PasswordConfig::default()
                .argon2_params(2048, 4, 4)
                .unwrap()
                .max_verify_memory_kib(8)
                .max_verify_iterations(1)
                .max_verify_parallelism(1),
        );
        let pw = secret("hunter2");
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.expose().starts_with("$argon2id$v=19$m=2048,t=4,p=4$"));
        assert_eq!(
            hasher.verify(&pw, &hash).await.unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn dummy_verification_never_matches_and_runs_the_configured_cost() {
        let hasher = cheap();
        let dummy = PasswordHash::new(&hasher.inner.dummy).unwrap();
        assert_eq!(dummy.algorithm, Algorithm::Argon2id.ident());
        let params = Params::try_from(&dummy).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (64, 1, 1)
        );
        for pw in ["", "hunter2", "password"] {
            assert_eq!(
                hasher.verify_dummy(&secret(pw)).await.unwrap(),
                Verified::Invalid
            );
        }
        assert_eq!(hasher.peak_in_flight(), 1);
        // The dummy really is verified (not short-circuited): it is a well-formed hash of the
        // configured kind, which `verify` accepts as such.
        assert_eq!(
            hasher
                .verify(&secret("hunter2"), &secret(&hasher.inner.dummy))
                .await
                .unwrap(),
            Verified::Invalid
        );
    }

    #[tokio::test]
    async fn the_memory_pool_holds_one_buffer_per_permit_and_wipes_it() {
        let hasher = cheap(); // 2 permits, 64 KiB
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash(&SecretString::new(format!("pw{i}"))).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let pool = hasher.inner.pool.lock().unwrap();
        assert!(!pool.is_empty() && pool.len() <= 2, "{}", pool.len());
        for buffer in pool.iter() {
            assert_eq!(buffer.len(), 64);
            assert!(
                buffer
                    .iter()
                    .all(|b| b.as_ref().iter().all(|&word| word == 0))
            );
        }
        drop(pool);
        assert!(hasher.peak_in_flight() <= 2);
        assert_eq!(hasher.in_flight(), 0);
    }

    #[test]
    fn debug_shows_no_secrets() {
        let hasher = cheap();
        let debug = format!("{hasher:?}");
        assert!(debug.contains("PasswordHasher"));
        let dummy_output = hasher.inner.dummy.rsplit('$').next().unwrap().to_owned();
        assert!(!debug.contains(&dummy_output));
    }
}
