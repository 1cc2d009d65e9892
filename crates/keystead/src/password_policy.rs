//! Password policy after NIST SP 800-63B: length, a blocklist, context words, no composition rules.
//!
//! ```
//! use keystead::password_policy::{PasswordPolicy, WeakPassword};
//! use keystead::{AuthError, ErrorCode};
//!
//! let policy = PasswordPolicy::default().context_word("Acme Cloud");
//! let email = "alice.smith@example.com";
//!
//! assert_eq!(policy.check("correct horse battery staple", &[email]), Ok(()));
//! assert_eq!(policy.check("ünïcødé 🔑 ok", &[email]), Ok(()));
//! assert_eq!(policy.check("short", &[email]), Err(WeakPassword::TooShort { min: 8 }));
//! assert_eq!(policy.check("Password1234", &[email]), Err(WeakPassword::Common));
//! assert_eq!(policy.check("Alice.Smith", &[email]), Err(WeakPassword::MatchesContext));
//! assert_eq!(policy.check("acme cloud", &[email]), Err(WeakPassword::MatchesContext));
//!
//! let err = AuthError::from(WeakPassword::Common);
//! assert_eq!((err.code, err.status()), (ErrorCode::WeakPassword, 422));
//! ```
//!
//! # The rules, in the order they are checked
//! The first rule that fails is the one reported.
//!
//! 1. **Length**, counted in Unicode code points (`str::chars`), as NIST counts characters:
//!    at least [`DEFAULT_MIN_CHARS`] (8) and at most [`DEFAULT_MAX_CHARS`] (256) by default
//!    ([`WeakPassword::TooShort`], [`WeakPassword::TooLong`]). The password is taken as given:
//!    not trimmed, not normalized. Counting stops one past the maximum, so a huge input costs
//!    no more than a long one.
//! 2. **Common and breached passwords** ([`WeakPassword::Common`]): the password, lower-cased
//!    (`str::to_lowercase`), is looked up in the list shipped with the crate
//!    (`data/common-passwords.txt`: 17,950 passwords of 8 or more characters from zxcvbn-ts's
//!    frequency-ranked list of leaked passwords, MIT; `data/README.md` tells the source and how
//!    to rebuild it). `password1234`, `Password1234` and `PASSWORD1234` are refused alike.
//! 3. **Context words** ([`WeakPassword::MatchesContext`]): NIST asks to refuse
//!    "context-specific words, such as the name of the service, the username". The password is
//!    refused when, lower-cased, it *equals* a context word lower-cased and trimmed of
//!    surrounding whitespace; for a context word containing `@` (an email address), it is also
//!    refused when it equals the part before the last `@`. Context words come from the policy
//!    ([`PasswordPolicy::context_word`], e.g. the service name) and from the call (the email,
//!    the user name). Empty words are ignored. A password that merely *contains* a context word
//!    is accepted: refusing `alice loves long walks` for user `alice` helps nobody.
//! 4. **Repeats and sequences** (on by default, [`PasswordPolicy::reject_trivial_patterns`];
//!    NIST's "repetitive or sequential characters (e.g. 'aaaaaa', '1234abcd')"), on the
//!    lower-cased password:
//!    - [`WeakPassword::Repetitive`]: one group of 1 to 4 characters repeated from start to end,
//!      the last repetition possibly cut short (`aaaaaaaa`, `abababab`, `abcabcab`,
//!      `12341234`, `🙂🙂🙂🙂🙂🙂🙂🙂`);
//!    - [`WeakPassword::Sequential`]: every character is the code point after the one before it,
//!      or every one the code point before (`abcdefgh`, `12345678`, `87654321`); among digits
//!      `9` → `0` continues an ascending run and `0` → `9` a descending one (`78901234`).
//!
//!    Mixed patterns such as `1234abcd` or `qwertyuiop` are not detected by rule: they are on the
//!    list. The list's source finds repeats and sequences by pattern, so `aaaaaaaa` and
//!    `87654321` are absent from it; this rule covers them.
//!
//! There are **no composition rules** (no "one digit, one symbol") and any Unicode is accepted,
//! spaces, emoji and control characters included, as NIST requires.
//!
//! # Configuration
//! The minimum may be raised but never set below 8 (NIST's floor, and the contract's), and the
//! maximum may be changed but never below 64 (NIST: verifiers should allow at least 64):
//! [`PasswordPolicy::length`] refuses other values with a [`PasswordPolicyConfigError`].
//! NIST SP 800-63B revision 4 asks for at least 15 characters when the password is the only
//! factor; a deployment that follows it sets `length(15, 256)`.
//!
//! The default maximum, 256 code points, is at most 1024 UTF-8 bytes: exactly
//! [`DEFAULT_MAX_PASSWORD_BYTES`](crate::password::DEFAULT_MAX_PASSWORD_BYTES), the hasher's
//! default limit. Raising the maximum past 256 needs a matching
//! [`PasswordConfig::max_password_bytes`](crate::password::PasswordConfig::max_password_bytes),
//! or long passwords pass the policy and are then refused by the hasher.

use std::collections::HashSet;
use std::sync::LazyLock;

use zeroize::Zeroizing;

use crate::error::{AuthError, ErrorCode};

/// Default minimum length, in Unicode code points (NIST SP 800-63B's minimum).
pub const DEFAULT_MIN_CHARS: usize = 8;
/// Default maximum length, in Unicode code points (the HTTP contract's limit).
pub const DEFAULT_MAX_CHARS: usize = 256;
/// The lowest minimum [`PasswordPolicy::length`] accepts.
pub const LOWEST_MIN_CHARS: usize = 8;
/// The lowest maximum [`PasswordPolicy::length`] accepts (NIST: allow at least 64).
pub const LOWEST_MAX_CHARS: usize = 64;
/// Longest group whose repetition [`WeakPassword::Repetitive`] refuses.
const MAX_REPEATED_GROUP: usize = 4;

/// The shipped list: one lower-case password per line (see `data/README.md`).
static COMMON_PASSWORDS_TXT: &str = include_str!("../data/common-passwords.txt");

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_PASSWORDS_TXT
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
});

/// Whether `password`, lower-cased, is on the shipped list of common and breached passwords.
///
/// The list holds only passwords of 8 or more characters; shorter ones are refused by length.
#[must_use]
pub fn is_common_password(password: &str) -> bool {
    let lowered = Zeroizing::new(password.to_lowercase());
    COMMON_PASSWORDS.contains(lowered.as_str())
}

/// Why a new password is refused. Its `Display` is a message for the user.
///
/// It never carries the password. It becomes a 422 `weak_password` [`AuthError`] with the
/// message as detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeakPassword {
    /// Fewer characters than the policy's minimum.
    #[error("The password must be at least {min} characters long.")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More characters than the policy's maximum.
    #[error("The password must be at most {max} characters long.")]
    TooLong {
        /// The maximum, in characters.
        max: usize,
    },
    /// On the list of common and breached passwords.
    #[error(
        "This password is too common: it appears in lists of leaked passwords. Choose another one."
    )]
    Common,
    /// Equal to a context word: the email address or its local part, the user name, the name of
    /// the service.
    #[error(
        "The password must not be your email address, your user name or the name of this service."
    )]
    MatchesContext,
    /// A short group of characters repeated (`aaaaaaaa`, `abababab`).
    #[error("The password must not be one character or a short group of characters repeated.")]
    Repetitive,
    /// A run of consecutive characters (`abcdefgh`, `87654321`).
    #[error("The password must not be a simple sequence such as 12345678 or abcdefgh.")]
    Sequential,
}

impl From<WeakPassword> for AuthError {
    fn from(reason: WeakPassword) -> Self {
        Self::new(ErrorCode::WeakPassword).with_detail(reason.to_string())
    }
}

/// A configuration the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordPolicyConfigError {
    /// The minimum is below NIST's 8 characters.
    #[error(
        "the minimum password length must be at least {} characters, not {min}",
        LOWEST_MIN_CHARS
    )]
    MinTooLow {
        /// The refused minimum.
        min: usize,
    },
    /// The maximum is below NIST's 64 characters.
    #[error(
        "the maximum password length must be at least {} characters, not {max}",
        LOWEST_MAX_CHARS
    )]
    MaxTooLow {
        /// The refused maximum.
        max: usize,
    },
    /// The minimum exceeds the maximum.
    #[error("the minimum password length ({min}) exceeds the maximum ({max})")]
    MinAboveMax {
        /// The refused minimum.
        min: usize,
        /// The refused maximum.
        max: usize,
    },
}

/// What a new password must satisfy (sign-up, password change, password reset).
///
/// Every setting has a safe default: 8 to 256 characters, the shipped blocklist, repeats and
/// sequences refused, no context word of its own. See the [module docs](self) for the rules.
///
/// ```
/// use keystead::password_policy::{PasswordPolicy, WeakPassword};
///
/// let policy = PasswordPolicy::new().length(15, 128)?.context_word("Acme");
/// assert_eq!(policy.min_chars(), 15);
/// assert_eq!(policy.check("twelve chars", &[]), Err(WeakPassword::TooShort { min: 15 }));
/// assert!(PasswordPolicy::new().length(6, 256).is_err());
/// assert!(PasswordPolicy::new().length(8, 32).is_err());
/// # Ok::<(), keystead::password_policy::PasswordPolicyConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct PasswordPolicy {
    min_chars: usize,
    max_chars: usize,
    reject_trivial_patterns: bool,
    /// Lower-cased, trimmed, non-empty.
    context_words: Vec<String>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: DEFAULT_MIN_CHARS,
            max_chars: DEFAULT_MAX_CHARS,
            reject_trivial_patterns: true,
            context_words: Vec::new(),
        }
    }
}

impl PasswordPolicy {
    /// The defaults: 8 to 256 characters, blocklist, repeats and sequences refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the accepted length, in Unicode code points, both ends included.
    ///
    /// # Errors
    /// [`PasswordPolicyConfigError::MinTooLow`] below 8,
    /// [`PasswordPolicyConfigError::MaxTooLow`] below 64,
    /// [`PasswordPolicyConfigError::MinAboveMax`] when `min > max`.
    pub fn length(mut self, min: usize, max: usize) -> Result<Self, PasswordPolicyConfigError> {
        if min < LOWEST_MIN_CHARS {
            return Err(PasswordPolicyConfigError::MinTooLow { min });
        }
        if max < LOWEST_MAX_CHARS {
            return Err(PasswordPolicyConfigError::MaxTooLow { max });
        }
        if min > max {
            return Err(PasswordPolicyConfigError::MinAboveMax { min, max });
        }
        self.min_chars = min;
        self.max_chars = max;
        Ok(self)
    }

    /// Whether repeated groups and sequences are refused (default `true`).
    pub fn reject_trivial_patterns(mut self, reject: bool) -> Self {
        self.reject_trivial_patterns = reject;
        self
    }

    /// Adds a word refused for every user, such as the name of the service. Compared as the
    /// words passed to [`check`](Self::check) are.
    pub fn context_word(mut self, word: impl AsRef<str>) -> Self {
        let word = word.as_ref().trim().to_lowercase();
        if !word.is_empty() && !self.context_words.contains(&word) {
            self.context_words.push(word);
        }
        self
    }

    /// The minimum length, in Unicode code points.
    #[must_use]
    pub const fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// The maximum length, in Unicode code points.
    #[must_use]
    pub const fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Checks a new password. `context` holds this user's words: the email address, the user
    /// name, the display name (any may be empty).
    ///
    /// # Errors
    /// The first rule the password breaks, as the [module docs](self) list them.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<(), WeakPassword> {
        // Counting stops one past the maximum: enough to tell "too long".
        let chars = password
            .chars()
            .take(self.max_chars.saturating_add(1))
            .count();
        if chars < self.min_chars {
            return Err(WeakPassword::TooShort {
                min: self.min_chars,
            });
        }
        if chars > self.max_chars {
            return Err(WeakPassword::TooLong {
                max: self.max_chars,
            });
        }

        let lowered = Zeroizing::new(password.to_lowercase());
        if COMMON_PASSWORDS.contains(lowered.as_str()) {
            return Err(WeakPassword::Common);
        }

        let matches_context = self
            .context_words
            .iter()
            .any(|word| matches_context_word(&lowered, word))
            || context
                .iter()
                .any(|word| matches_context_word(&lowered, &word.trim().to_lowercase()));
        if matches_context {
            return Err(WeakPassword::MatchesContext);
        }

        if self.reject_trivial_patterns {
            if is_repetitive(&lowered) {
                return Err(WeakPassword::Repetitive);
            }
            if is_sequential(&lowered) {
                return Err(WeakPassword::Sequential);
            }
        }
        Ok(())
    }
}

/// `lowered` equals the lower-cased, trimmed `word`, or the part of it before its last `@`.
fn matches_context_word(lowered: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    if lowered == word {
        return true;
    }
    match word.rsplit_once('@') {
        Some((local, _domain)) => !local.is_empty() && lowered == local,
        None => false,
    }
}

/// One group of 1 to [`MAX_REPEATED_GROUP`] characters repeated over the whole string (which
/// is at least twice as long as the group).
fn is_repetitive(s: &str) -> bool {
    let len = s.chars().count();
    (1..=MAX_REPEATED_GROUP)
        .filter(|&period| len >= 2 * period)
        .any(|period| s.chars().zip(s.chars().skip(period)).all(|(a, b)| a == b))
}

/// Every character one code point above the one before, or every one below (with `9` → `0`
/// ascending and `0` → `9` descending among digits).
fn is_sequential(s: &str) -> bool {
    let step = |a: char, b: char| -> i64 {
        match (a, b) {
            ('9', '0') => 1,
            ('0', '9') => -1,
            _ => i64::from(u32::from(b)) - i64::from(u32::from(a)),
        }
    };
    let mut steps = s.chars().zip(s.chars().skip(1)).map(|(a, b)| step(a, b));
    match steps.next() {
        Some(first @ (1 | -1)) => steps.all(|d| d == first),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn length_bounds_are_8_and_256_inclusive() {
        let p = policy();
        assert_eq!(
            p.check("q7#vkz!", &[]),
            Err(WeakPassword::TooShort { min: 8 })
        );
        assert_eq!(p.check("q7#vkz!m", &[]), Ok(()));
        assert_eq!(p.check("", &[]), Err(WeakPassword::TooShort { min: 8 }));
        let at_max: String = "q7#vkz!m".repeat(32);
        assert_eq!(at_max.chars().count(), 256);
        assert_eq!(p.check(&at_max, &[]), Ok(()));
        let over_max = format!("{at_max}x");
        assert_eq!(
            p.check(&over_max, &[]),
            Err(WeakPassword::TooLong { max: 256 })
        );
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        let p = policy();
        // 8 distinct emoji: 32 bytes, 8 characters.
        let emoji = "🦀🔑🌍🎲🍋🚲🎻🧭";
        assert_eq!(emoji.len(), 32);
        assert_eq!(p.check(emoji, &[]), Ok(()));
        // 4 characters of 4 bytes each: 16 bytes, but 4 characters.
        let four = "𝄞𝕏🦀🔑";
        assert_eq!(four.len(), 16);
        assert_eq!(p.check(four, &[]), Err(WeakPassword::TooShort { min: 8 }));
        // 256 characters of 4 bytes (1024 bytes) are allowed; 257 are not.
        let wide: String = emoji.repeat(32);
        assert_eq!(wide.len(), 1024);
        assert_eq!(p.check(&wide, &[]), Ok(()));
        assert_eq!(
            p.check(&format!("{wide}🦀"), &[]),
            Err(WeakPassword::TooLong { max: 256 })
        );
    }

    #[test]
    fn default_max_fits_the_hashers_default_byte_limit() {
        assert_eq!(
            DEFAULT_MAX_CHARS * 4,
            crate::password::DEFAULT_MAX_PASSWORD_BYTES
        );
    }

    #[test]
    fn a_huge_password_is_refused_as_too_long() {
        let huge = "x".repeat(10 * 1024 * 1024);
        assert_eq!(
            policy().check(&huge, &[]),
            Err(WeakPassword::TooLong { max: 256 })
        );
    }

    #[test]
    fn any_unicode_is_accepted_without_composition_rules() {
        let p = policy();
        for ok in [
            "correct horse battery staple",
            "all lower case letters only",
            "ünïcødé pässwörd",
            "пароль-для-входа",
            "密码是一个很长的句子吗",
            "   spaces around   ",
            "tab\tand\nnewline\u{0}nul",
            "Tr0ub4dor&3",
        ] {
            assert_eq!(p.check(ok, &[]), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        let p = policy();
        for common in [
            "password1234",
            "Password1234",
            "PASSWORD1234",
            "pAsSwOrD1234",
            "password",
            "12345678",
            "qwertyuiop",
            "iloveyou",
            "1234abcd",
            "passw0rd",
            "trustno1",
        ] {
            assert_eq!(
                p.check(common, &[]),
                Err(WeakPassword::Common),
                "{common:?}"
            );
            assert!(is_common_password(common), "{common:?}");
        }
        assert!(!is_common_password("correct horse battery staple"));
    }

    #[test]
    fn shipped_list_loads_with_its_documented_size() {
        assert_eq!(COMMON_PASSWORDS.len(), 17_950);
        assert!(COMMON_PASSWORDS.contains("password1234"));
        // Every entry is reachable: long enough, lower-case, no stray whitespace.
        for entry in COMMON_PASSWORDS.iter() {
            assert!(entry.chars().count() >= DEFAULT_MIN_CHARS, "{entry:?}");
            assert_eq!(*entry, entry.to_lowercase(), "{entry:?}");
            assert_eq!(*entry, entry.trim(), "{entry:?}");
        }
    }

    #[test]
    fn context_words_are_refused_case_insensitively() {
        let p = policy().context_word("  Acme Cloud ");
        let email = "Alice.Smith@Example.com";
        let ctx = [email, "alice_in_chains", ""];
        assert_eq!(
            p.check("acme cloud", &ctx),
            Err(WeakPassword::MatchesContext)
        );
        assert_eq!(
            p.check("ACME CLOUD", &ctx),
            Err(WeakPassword::MatchesContext)
        );
        assert_eq!(
            p.check("alice.smith@example.com", &ctx),
            Err(WeakPassword::MatchesContext)
        );
        assert_eq!(
            p.check("alice.smith", &ctx),
            Err(WeakPassword::MatchesContext)
        );
        assert_eq!(
            p.check("ALICE.SMITH", &ctx),
            Err(WeakPassword::MatchesContext)
        );
        assert_eq!(
            p.check("Alice_In_Chains", &ctx),
            Err(WeakPassword::MatchesContext)
        );
        // Containing a context word is fine; so is the domain, and an empty word matches nothing.
        assert_eq!(p.check("alice.smith likes tea", &ctx), Ok(()));
        assert_eq!(p.check("example.com", &ctx), Ok(()));
        assert_eq!(policy().check("acme cloud", &[]), Ok(()));
    }

    #[test]
    fn local_part_is_taken_before_the_last_at_sign() {
        let p = policy();
        assert_eq!(
            p.check("\"odd@local\"", &["\"odd@local\"@example.com"]),
            Err(WeakPassword::MatchesContext)
        );
        // An address with an empty local part refuses only itself, not its domain.
        assert_eq!(p.check("example.org", &["@example.org"]), Ok(()));
    }

    #[test]
    fn repeated_groups_are_refused() {
        let p = policy();
        for weak in [
            "zzzzzzzz",
            "ZzZzZzZzZz",
            "xyxyxyxy",
            "qwzqwzqw",
            "k9!ak9!ak9!a",
            "🙂🙂🙂🙂🙂🙂🙂🙂",
        ] {
            assert_eq!(
                p.check(weak, &[]),
                Err(WeakPassword::Repetitive),
                "{weak:?}"
            );
        }
        // A group of five repeated is not this rule's business, nor is a repeat inside.
        assert_eq!(p.check("k9!azk9!azk9!az", &[]), Ok(()));
        assert_eq!(p.check("zzzzzzzz plus more", &[]), Ok(()));
        let lenient = policy().reject_trivial_patterns(false);
        assert_eq!(lenient.check("zzzzzzzz", &[]), Ok(()));
    }

    #[test]
    fn sequences_are_refused_both_ways() {
        let p = policy();
        for weak in [
            "87654321",
            "hgfedcba",
            "KLMNOPQRST",
            "78901234",
            "32109876",
            "αβγδεζηθ",
        ] {
            assert_eq!(
                p.check(weak, &[]),
                Err(WeakPassword::Sequential),
                "{weak:?}"
            );
        }
        assert_eq!(p.check("13579bdf", &[]), Ok(()));
        assert_eq!(p.check("abcdefgz", &[]), Ok(()));
        assert_eq!(p.check("a-b-c-d-e-f", &[]), Ok(()));
        let lenient = policy().reject_trivial_patterns(false);
        assert_eq!(lenient.check("87654321", &[]), Ok(()));
    }

    #[test]
    fn rules_are_reported_in_order() {
        let p = policy().context_word("password1234");
        // Too short beats everything; the list beats context; context beats patterns.
        assert_eq!(p.check("aaaa", &[]), Err(WeakPassword::TooShort { min: 8 }));
        assert_eq!(p.check("password1234", &[]), Err(WeakPassword::Common));
        assert_eq!(
            p.check("zzzzzzzz", &["zzzzzzzz"]),
            Err(WeakPassword::MatchesContext)
        );
    }

    #[test]
    fn length_can_be_raised_but_not_below_nist() {
        let p = policy().length(15, 64).expect("valid");
        assert_eq!((p.min_chars(), p.max_chars()), (15, 64));
        assert_eq!(
            p.check("fourteen chars", &[]),
            Err(WeakPassword::TooShort { min: 15 })
        );
        assert_eq!(p.check("fifteen chars!!", &[]), Ok(()));
        assert_eq!(
            p.check(&"q7#vkz!m".repeat(8), &[]),
            Ok(()),
            "64 characters are allowed"
        );
        assert_eq!(
            p.check(&"q7#vkz!m".repeat(9), &[]),
            Err(WeakPassword::TooLong { max: 64 })
        );

        assert_eq!(
            policy().length(7, 256),
            Err(PasswordPolicyConfigError::MinTooLow { min: 7 })
        );
        assert_eq!(
            policy().length(8, 63),
            Err(PasswordPolicyConfigError::MaxTooLow { max: 63 })
        );
        assert_eq!(
            policy().length(100, 64),
            Err(PasswordPolicyConfigError::MinAboveMax { min: 100, max: 64 })
        );
        assert_eq!(
            policy().length(8, usize::MAX).map(|p| p.max_chars()),
            Ok(usize::MAX)
        );
        assert_eq!(
            policy().length(8, usize::MAX).map(|p| p.check("abc", &[])),
            Ok(Err(WeakPassword::TooShort { min: 8 }))
        );
    }

    #[test]
    fn weak_password_maps_to_422_weak_password_with_the_message() {
        for reason in [
            WeakPassword::TooShort { min: 8 },
            WeakPassword::TooLong { max: 256 },
            WeakPassword::Common,
            WeakPassword::MatchesContext,
            WeakPassword::Repetitive,
            WeakPassword::Sequential,
        ] {
            let err = AuthError::from(reason);
            assert_eq!(err.code, ErrorCode::WeakPassword);
            assert_eq!(err.status(), 422);
            assert_eq!(err.code.as_str(), "weak_password");
            assert_eq!(err.detail.as_deref(), Some(reason.to_string().as_str()));
        }
        assert_eq!(
            WeakPassword::TooShort { min: 8 }.to_string(),
            "The password must be at least 8 characters long."
        );
    }

    #[test]
    fn refusal_never_echoes_the_password() {
        let secret = "Password1234";
        let err = policy().check(secret, &[]).expect_err("common");
        let shown = format!("{err} {err:?} {}", AuthError::from(err));
        assert!(!shown.to_lowercase().contains("password1234"), "{shown}");
    }
}
