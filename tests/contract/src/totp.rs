//! TOTP (RFC 6238: HMAC-SHA-1, 30 s steps, 6 digits) written here from the RFC, so that the
//! suite checks the app's codes against an implementation that is not the app's.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The period in seconds.
pub const STEP_SECS: u64 = 30;

/// The bytes of an RFC 4648 base32 string (upper or lower case, padding and spaces ignored).
///
/// # Panics
/// On a character outside the alphabet.
#[must_use]
pub fn base32_decode(text: &str) -> Vec<u8> {
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => u64::from(c as u8 - b'A'),
            c @ '2'..='7' => u64::from(c as u8 - b'2') + 26,
            other => panic!("{other:?} is not base32"),
        };
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).expect("a byte"));
        }
    }
    out
}

/// The code of time step `step` for `secret`.
///
/// # Panics
/// Never for a non-empty secret.
#[must_use]
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    format!("{:06}", binary % 1_000_000)
}

/// The current time step.
///
/// # Panics
/// When the clock is before 1970.
#[must_use]
pub fn current_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        / STEP_SECS
}

/// The code of the step `offset` steps from now for a base32 `secret`.
#[must_use]
pub fn code(secret_base32: &str, offset: i64) -> String {
    let step = current_step().saturating_add_signed(offset);
    code_at_step(&base32_decode(secret_base32), step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_appendix_b_sha1() {
        // The RFC's 8-digit codes; ours are their last six digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at_step(secret, 59 / 30), "287082");
        assert_eq!(code_at_step(secret, 1_111_111_109 / 30), "081804");
        assert_eq!(code_at_step(secret, 1_234_567_890 / 30), "005924");
        assert_eq!(code_at_step(secret, 2_000_000_000 / 30), "279037");
    }

    #[test]
    fn base32_round_trips_rfc_4648_vectors() {
        assert_eq!(base32_decode("MZXW6YTBOI======"), b"foobar");
        assert_eq!(base32_decode("mzxw6ytb"), b"fooba");
    }
}
