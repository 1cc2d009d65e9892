//! Delivery through an SMTP relay, on lettre with rustls.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use uuid::Uuid;

use super::{MailError, MailMessage, Mailer};
use crate::Email;
use crate::secret::SecretString;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS before anything else is sent; refuses servers
    /// that do not offer it (no silent downgrade). Default port 587.
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS"). Default port 465.
    Implicit,
    /// No encryption: only allowed to a loopback host (a local relay or a test server), since
    /// credentials and the tokens in the links must not cross the network in clear. Default
    /// port 25.
    None,
}

impl SmtpTls {
    /// The port used when none is configured.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Implicit => 465,
            Self::None => 25,
        }
    }
}

/// Why an SMTP configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpConfigError {
    /// The host is empty or not a host name or IP address.
    #[error("the SMTP host is not a host name or IP address")]
    InvalidHost,
    /// Port 0.
    #[error("the SMTP port must not be 0")]
    InvalidPort,
    /// [`SmtpTls::None`] with a host that is not a loopback one.
    #[error(
        "SMTP without TLS is only allowed to a loopback host: credentials and mail links must not \
         cross the network in clear"
    )]
    CleartextToRemoteHost,
    /// The sender address or name cannot be used in a mail header.
    #[error("the sender address cannot be used in a mail")]
    InvalidSender,
    /// A zero time-out.
    #[error("the SMTP time-out must be positive")]
    InvalidTimeout,
    /// The TLS client could not be set up for this host.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// Where and how [`SmtpMailer`] sends. Built with [`SmtpConfig::builder`].
#[derive(Clone)]
#[non_exhaustive]
pub struct SmtpConfig {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<(String, SecretString)>,
    from: Mailbox,
    timeout: Duration,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// Starts a configuration sending from `from` through `host`, with STARTTLS on port 587,
    /// no credentials and a 30-second time-out.
    pub fn builder(host: impl Into<String>, from: Email) -> SmtpConfigBuilder {
        SmtpConfigBuilder {
            host: host.into(),
            port: None,
            tls: SmtpTls::default(),
            credentials: None,
            from,
            from_name: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The host mail is sent to.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port mail is sent to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the connection is protected.
    #[must_use]
    pub fn tls(&self) -> SmtpTls {
        self.tls
    }
}

/// Builder of [`SmtpConfig`]; every setting but the host and sender has a safe default.
#[derive(Debug, Clone)]
#[must_use]
pub struct SmtpConfigBuilder {
    host: String,
    port: Option<u16>,
    tls: SmtpTls,
    credentials: Option<(String, SecretString)>,
    from: Email,
    from_name: Option<String>,
    timeout: Duration,
}

impl SmtpConfigBuilder {
    /// The port; by default the one of the TLS mode ([`SmtpTls::default_port`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How the connection is protected (default [`SmtpTls::StartTls`]).
    pub fn tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticates with `username` and `password` (only ever sent over TLS or to loopback).
    pub fn credentials(mut self, username: impl Into<String>, password: SecretString) -> Self {
        self.credentials = Some((username.into(), password));
        self
    }

    /// The display name of the sender (`"Acme" <no-reply@acme.test>`).
    pub fn from_name(mut self, name: impl Into<String>) -> Self {
        self.from_name = Some(name.into());
        self
    }

    /// How long one connection or command may take (default 30 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`SmtpConfigError`] for an invalid host, port, sender or time-out, and for
    /// [`SmtpTls::None`] with a host that is not a loopback one.
    pub fn build(self) -> Result<SmtpConfig, SmtpConfigError> {
        let host = normalize_host(&self.host).ok_or(SmtpConfigError::InvalidHost)?;
        let port = self.port.unwrap_or(self.tls.default_port());
        if port == 0 {
            return Err(SmtpConfigError::InvalidPort);
        }
        if self.tls == SmtpTls::None && !is_loopback(&host) {
            return Err(SmtpConfigError::CleartextToRemoteHost);
        }
        if self.timeout.is_zero() {
            return Err(SmtpConfigError::InvalidTimeout);
        }
        let address: Address = self
            .from
            .as_str()
            .parse()
            .map_err(|_| SmtpConfigError::InvalidSender)?;
        let name = match self.from_name {
            Some(n) if n.chars().any(char::is_control) => {
                return Err(SmtpConfigError::InvalidSender);
            }
            Some(n) if !n.trim().is_empty() => Some(n.trim().to_owned()),
            _ => None,
        };
        Ok(SmtpConfig {
            host,
            port,
            tls: self.tls,
            credentials: self.credentials,
            from: Mailbox::new(name, address),
            timeout: self.timeout,
        })
    }
}

/// A host name or IP address, IPv6 brackets removed; `None` when it is neither.
fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Some(unbracketed.to_owned());
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    (name.len() <= 253 && name.split('.').all(valid_label)).then(|| name.to_ascii_lowercase())
}

/// Loopback addresses and the names reserved for them (RFC 6761: `localhost`, `*.localhost`).
fn is_loopback(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

/// Sends through an SMTP server with lettre (rustls, ring, webpki roots), pooling connections.
///
/// The transport is created on the first send, inside the Tokio runtime that sends.
pub struct SmtpMailer {
    config: SmtpConfig,
    tls: Tls,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`.
    ///
    /// # Errors
    /// [`MailError::Config`] with [`SmtpConfigError::Tls`] when the TLS client cannot be set up
    /// for the host.
    pub fn new(config: SmtpConfig) -> Result<Self, MailError> {
        let parameters = || {
            TlsParameters::new(config.host.clone()).map_err(|e| SmtpConfigError::Tls(e.to_string()))
        };
        let tls = match config.tls {
            SmtpTls::StartTls => Tls::Required(parameters()?),
            SmtpTls::Implicit => Tls::Wrapper(parameters()?),
            SmtpTls::None => Tls::None,
        };
        Ok(Self {
            config,
            tls,
            transport: OnceLock::new(),
        })
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| {
            let c = &self.config;
            let mut builder =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
                    .port(c.port)
                    .tls(self.tls.clone())
                    .timeout(Some(c.timeout));
            if let Some((user, password)) = &c.credentials {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            }
            builder.build()
        })
    }

    fn build_message(&self, message: &MailMessage) -> Result<Message, MailError> {
        if message.subject.chars().any(char::is_control) {
            return Err(MailError::InvalidMessage("the subject must be one line"));
        }
        let to: Address = message
            .to
            .as_str()
            .parse()
            .map_err(|_| MailError::InvalidAddress("recipient"))?;
        // Set here rather than left to the relay, which not all do (its absence reads as spam);
        // the sender's domain, not this machine's host name, which is nobody's business.
        let message_id = format!(
            "<{}@{}>",
            Uuid::now_v7().simple(),
            self.config.from.email.domain()
        );
        Message::builder()
            .message_id(Some(message_id))
            .from(self.config.from.clone())
            .to(Mailbox::new(None, to))
            .subject(message.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone())
            .map_err(|_| MailError::InvalidMessage("it could not be encoded"))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let email = self.build_message(message)?;
        match self.transport().send(email).await {
            Ok(_) => {
                tracing::debug!(to = %message.to, host = %self.config.host, "mail sent");
                Ok(())
            }
            Err(e) => {
                let retryable = e.is_transient()
                    || e.is_timeout()
                    || !(e.is_permanent() || e.is_client() || e.is_tls() || e.is_response());
                tracing::warn!(to = %message.to, host = %self.config.host, error = %e, "mail not sent");
                Err(MailError::Smtp {
                    retryable,
                    detail: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> Email {
        Email::parse("no-reply@acme.test").unwrap()
    }

    #[test]
    fn cleartext_is_refused_for_a_remote_host() {
        for host in [
            "smtp.example.com",
            "10.0.0.5",
            "localhost.example.com",
            "::2",
        ] {
            let err = SmtpConfig::builder(host, from())
                .tls(SmtpTls::None)
                .build()
                .unwrap_err();
            assert_eq!(err, SmtpConfigError::CleartextToRemoteHost, "{host}");
        }
    }

    #[test]
    fn cleartext_is_allowed_to_loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.8.9.1",
            "::1",
            "[::1]",
            "localhost",
            "mail.localhost",
        ] {
            let config = SmtpConfig::builder(host, from())
                .tls(SmtpTls::None)
                .build()
                .unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(config.port(), 25);
        }
    }

    #[test]
    fn defaults_are_starttls_on_the_submission_port() {
        let config = SmtpConfig::builder("smtp.example.com", from())
            .build()
            .unwrap();
        assert_eq!(config.tls(), SmtpTls::StartTls);
        assert_eq!(config.port(), 587);
        let config = SmtpConfig::builder("smtp.example.com", from())
            .tls(SmtpTls::Implicit)
            .build()
            .unwrap();
        assert_eq!(config.port(), 465);
        SmtpMailer::new(config).unwrap();
    }

    #[test]
    fn invalid_settings_are_refused() {
        let b = || SmtpConfig::builder("smtp.example.com", from());
        for host in [
            "",
            "smtp example.com",
            "smtp.example.com\r\nRCPT",
            "a..b",
            "-a.b",
            "a:25",
        ] {
            assert_eq!(
                SmtpConfig::builder(host, from()).build().unwrap_err(),
                SmtpConfigError::InvalidHost,
                "{host:?}"
            );
        }
        assert_eq!(
            b().port(0).build().unwrap_err(),
            SmtpConfigError::InvalidPort
        );
        assert_eq!(
            b().timeout(Duration::ZERO).build().unwrap_err(),
            SmtpConfigError::InvalidTimeout
        );
        assert_eq!(
            b().from_name("Acme\r\nBcc: x@evil.test")
                .build()
                .unwrap_err(),
            SmtpConfigError::InvalidSender
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = SmtpConfig::builder("smtp.example.com", from())
            .credentials("mailer", SecretString::new("hunter2-pw"))
            .build()
            .unwrap();
        let mailer = SmtpMailer::new(config.clone()).unwrap();
        for debug in [format!("{config:?}"), format!("{mailer:?}")] {
            assert!(!debug.contains("hunter2-pw"), "{debug}");
            assert!(debug.contains("mailer"), "{debug}");
        }
    }
}
