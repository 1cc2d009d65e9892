//! Outgoing mail: the [`Mailer`] trait, the messages the flows send and two mailers.
//!
//! - [`FileMailer`] is the development mailer of the contract (`AUTH_MAIL_DIR`): each message
//!   becomes one JSON file `{"to", "subject", "text", "action_url"}`, written atomically.
//! - `SmtpMailer` (feature `smtp`, on by default) sends through an SMTP relay (STARTTLS by default, rustls).
//! - [`MemoryMailer`] keeps messages in memory, for tests of the flows.
//!
//! [`MailTemplates`] writes the three messages the flows send: email verification, password
//! reset and organization invitation.
//!
//! ```
//! use keystead::Email;
//! use keystead::mail::{MailTemplates, Mailer, MemoryMailer};
//! use time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let templates = MailTemplates::new("Acme");
//! let message = templates.email_verification(
//!     Email::parse("alice@example.com").unwrap(),
//!     "https://acme.test/auth/verify-email?token=abc",
//!     Duration::hours(24),
//! );
//! assert!(message.text.contains("24 hours"));
//! // The token never reaches logs through `Debug`.
//! assert!(!format!("{message:?}").contains("abc"));
//!
//! let mailer = MemoryMailer::default();
//! mailer.send(&message).await.unwrap();
//! assert_eq!(mailer.messages()[0].subject, "Verify your email address for Acme");
//! # });
//! ```

mod file;
mod memory;
#[cfg(feature = "smtp")]
mod smtp;
mod templates;

use std::fmt;

use async_trait::async_trait;

use crate::Email;

pub use file::FileMailer;
pub use memory::MemoryMailer;
#[cfg(feature = "smtp")]
pub use smtp::{SmtpConfig, SmtpConfigBuilder, SmtpConfigError, SmtpMailer, SmtpTls};
pub use templates::{MailTemplates, SecurityNotice, describe_duration};

/// Sends mail. Implementations must be cheap to share (`Arc<dyn Mailer>`).
#[async_trait]
pub trait Mailer: Send + Sync + fmt::Debug {
    /// Sends one message.
    ///
    /// # Errors
    /// A [`MailError`] when the message could not be handed over; it never holds credentials.
    async fn send(&self, message: &MailMessage) -> Result<(), MailError>;
}

/// One plain-text message to one recipient.
///
/// `action_url` is the link the user is asked to click; it holds a secret token, so `Debug`
/// redacts its query string and fragment, and prints only the length of `text` (which repeats
/// the link).
#[derive(Clone, PartialEq, Eq)]
pub struct MailMessage {
    /// The recipient.
    pub to: Email,
    /// The subject, one line.
    pub subject: String,
    /// The plain-text body (UTF-8); it already contains `action_url` when there is one.
    pub text: String,
    /// The link the user would click, holding the token.
    pub action_url: Option<String>,
}

impl fmt::Debug for MailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailMessage")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &format_args!("[{} bytes]", self.text.len()))
            .field(
                "action_url",
                &self.action_url.as_deref().map(redact_url).as_deref(),
            )
            .finish()
    }
}

/// The URL without its query string and fragment, where tokens travel.
fn redact_url(url: &str) -> String {
    match url.find(['?', '#']) {
        Some(i) => format!("{}?[redacted]", &url[..i]),
        None => url.to_owned(),
    }
}

/// Why a message was not sent. Never holds credentials or message content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The mailer's configuration is refused.
    #[error("invalid mail configuration: {0}")]
    Config(#[from] SmtpConfigError),
    /// An address (recipient or sender) cannot be used in a mail header.
    #[error("the {0} address cannot be used in a mail")]
    InvalidAddress(&'static str),
    /// The message cannot be sent as it is (for example a subject spanning several lines).
    #[error("the message cannot be sent: {0}")]
    InvalidMessage(&'static str),
    /// The development mailer could not write its file.
    #[error("could not {action} in the mail directory")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The SMTP server could not be reached or refused the message.
    #[error("SMTP delivery failed: {detail}")]
    Smtp {
        /// Whether trying again later may succeed (network trouble, time-out, 4xx reply).
        retryable: bool,
        /// What went wrong, as the SMTP client reports it.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(action_url: Option<&str>) -> MailMessage {
        MailMessage {
            to: Email::parse("bob@example.com").unwrap(),
            subject: "Reset".to_owned(),
            text: format!("Click {}", action_url.unwrap_or("nothing")),
            action_url: action_url.map(str::to_owned),
        }
    }

    #[test]
    fn debug_redacts_the_token_in_the_action_url_and_the_text() {
        let secret = "tok3n-s3cret";
        let m = message(Some(&format!("https://a.test/reset?token={secret}#x")));
        let debug = format!("{m:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(debug.contains("https://a.test/reset?[redacted]"), "{debug}");
        assert!(debug.contains("bob@example.com"), "{debug}");

        let m = message(Some(&format!("https://a.test/reset#{secret}")));
        assert!(!format!("{m:?}").contains(secret));
    }

    #[test]
    fn debug_shows_a_url_without_query_as_is() {
        let m = message(Some("https://a.test/dashboard"));
        assert!(format!("{m:?}").contains("Some(\"https://a.test/dashboard\")"));
        assert!(format!("{:?}", message(None)).contains("action_url: None"));
    }
}
