//! Secrets: random tokens, their hashes at rest, constant-time comparison, redaction.
//!
//! ```
//! use keystead_core::secret::{generate_token, TokenHash};
//!
//! let token = generate_token();            // goes to the client (cookie, mail link)
//! let hash = TokenHash::of(token.expose()); // goes to the database
//! assert_eq!(format!("{token:?}"), "SecretString([redacted])");
//! assert!(hash.matches(token.expose()));
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of entropy in a generated token: 256 bits, twice the 128-bit floor.
pub const TOKEN_BYTES: usize = 32;

/// A string that must not be logged: its `Debug` is redacted and it is zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for SecretString {}

impl SecretString {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Call sites are easy to audit by searching for `expose`.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// If the operating system has no randomness to give, which no supported platform does once
/// booted; continuing without it would be worse than stopping.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A new random token: [`TOKEN_BYTES`] bytes from the OS CSPRNG, base64url without padding
/// (43 characters).
#[must_use]
pub fn generate_token() -> SecretString {
    let mut bytes = [0u8; TOKEN_BYTES];
    fill_random(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    bytes.zeroize();
    SecretString(token)
}

/// The SHA-256 of a token: what the database keeps instead of the token.
///
/// A fast hash is right here (unlike for passwords): the token has 256 bits of entropy, so
/// nobody can guess it from the hash, and lookups by hash are cheap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The bytes are a SHA-256 output, uniformly distributed: 64 of them are as good a
        // hash-table key as all 256, and a quarter of the work (equality still compares all).
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_ne_bytes(first));
    }
}

/// A [`BuildHasher`](std::hash::BuildHasher) for in-process maps keyed by [`TokenHash`]: the
/// key already is a uniform 64-bit value, so the hasher passes it through, mixed with a
/// per-map random seed.
///
/// Why this cannot be flooded: the maps that use it (the session and verified-token caches)
/// only take entries for credentials this server issued, whose tokens are its own random
/// values; a client cannot pick the hashes it would need to crowd one bucket.
#[derive(Debug, Clone, Copy)]
pub struct TokenHashBuilder(u64);

impl Default for TokenHashBuilder {
    fn default() -> Self {
        let mut seed = [0u8; 8];
        fill_random(&mut seed);
        Self(u64::from_ne_bytes(seed))
    }
}

impl std::hash::BuildHasher for TokenHashBuilder {
    type Hasher = TokenHasher;

    fn build_hasher(&self) -> TokenHasher {
        TokenHasher(self.0)
    }
}

/// The hasher of [`TokenHashBuilder`].
#[derive(Debug, Clone, Copy)]
pub struct TokenHasher(u64);

impl std::hash::Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached by keys other than `TokenHash`; fold the bytes in, FNV-1a style.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

impl TokenHash {
    /// Hashes a token.
    #[must_use]
    pub fn of(token: &str) -> Self {
        Self::of_bytes(token.as_bytes())
    }

    /// Hashes a token given as bytes.
    #[must_use]
    pub fn of_bytes(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    /// Wraps a hash read back from a store.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a hash read back from a store, if it has the right length.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The hash's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `token` hashes to this value, compared in constant time.
    #[must_use]
    pub fn matches(&self, token: &str) -> bool {
        constant_time_eq(&Self::of(token).0, &self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell two hashes apart in a log, not enough to look one up.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Compares two byte strings in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_base64url_and_distinct() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        let decoded = URL_SAFE_NO_PAD.decode(a.expose()).unwrap();
        assert_eq!(decoded.len(), TOKEN_BYTES);
        assert!(
            a.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn token_hash_is_sha256() {
        // SHA-256("abc"), from FIPS 180-2.
        let h = TokenHash::of("abc");
        assert_eq!(
            h.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "known-answer test for SHA-256"
        );
        assert!(h.matches("abc"));
        assert!(!h.matches("abd"));
        assert_eq!(TokenHash::from_slice(h.as_bytes()), Some(h));
        assert_eq!(TokenHash::from_slice(&[0; 31]), None);
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let s = SecretString::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let h = TokenHash::of("hunter2");
        assert!(format!("{h:?}").len() < 30);
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sama"));
        assert!(!constant_time_eq(b"same", b"same!"));
    }
}
