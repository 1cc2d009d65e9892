//! Email addresses, normalized once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A syntactically valid, normalized email address.
///
/// Normalization trims surrounding white space and lower-cases the whole address (Unicode
/// aware), so `Alice@Example.COM` and `alice@example.com` are one account. Providers such as
/// Clerk and Auth0 do the same; mailbox-case-sensitive servers are vanishingly rare. The stores
/// enforce the same uniqueness in their schemas.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// Empty, too long, or without a local part and a domain.
    #[error("not a valid email address")]
    Invalid,
}

impl Email {
    /// Validates and normalizes an address.
    ///
    /// # Errors
    /// [`EmailError::Invalid`] when it is not of the form `local@domain`, holds white space or
    /// control characters, or is longer than [`MAX_EMAIL_LEN`].
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let normalized = input.trim().to_lowercase();
        if normalized.is_empty() || normalized.len() > MAX_EMAIL_LEN {
            return Err(EmailError::Invalid);
        }
        let (local, domain) = normalized.rsplit_once('@').ok_or(EmailError::Invalid)?;
        let bad_char =
            |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';');
        if local.is_empty()
            || local.len() > 64
            || local.contains('@')
            || domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.starts_with('-')
            || domain.contains("..")
            || !domain.contains('.')
            || normalized.chars().any(bad_char)
        {
            return Err(EmailError::Invalid);
        }
        Ok(Self(normalized))
    }

    /// The normalized address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part.
    #[must_use]
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_space() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "alice@example.com");
        assert_eq!(e.domain(), "example.com");
        assert_eq!(
            Email::parse("ÉLODIE@exämple.org").unwrap().as_str(),
            "élodie@exämple.org"
        );
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "al ice@example.com",
            "alice@exa..mple.com",
            "alice@.example.com",
            "alice@example.com.",
            "a@b@example.com",
            "alice\n@example.com",
            "<alice@example.com>",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<Email>("\"Bob@Example.com\"").is_ok());
        assert!(serde_json::from_str::<Email>("\"bob\"").is_err());
    }
}
