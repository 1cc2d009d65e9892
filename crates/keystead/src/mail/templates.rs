//! The messages the flows send: email verification, password reset, organization invitation,
//! and the security notices (a factor added or removed, a recovery code used, the password
//! changed, a new API token, a sign-in from a new device).

use time::Duration;

use super::MailMessage;
use crate::Email;

/// Longest application or organization name put into a message; longer ones are cut.
const MAX_NAME_CHARS: usize = 100;

/// Writes the plain, short messages of the flows, signed with the application's name.
///
/// Names (the application's, an organization's) are put on one line: control characters become
/// spaces and they are cut at 100 characters, so a crafted organization name cannot add header
/// lines or push the link out of sight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplates {
    app_name: String,
}

impl MailTemplates {
    /// Templates for the application called `app_name`.
    #[must_use]
    pub fn new(app_name: &str) -> Self {
        Self {
            app_name: one_line(app_name),
        }
    }

    /// The application's name, as it appears in messages.
    #[must_use]
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// Asks `to` to confirm their address by opening `action_url` (valid for `expires_in`).
    #[must_use]
    pub fn email_verification(
        &self,
        to: Email,
        action_url: &str,
        expires_in: Duration,
    ) -> MailMessage {
        let app = &self.app_name;
        let expires = describe_duration(expires_in);
        MailMessage {
            to,
            subject: format!("Verify your email address for {app}"),
            text: format!(
                "Hello,\n\n\
                 please confirm your email address for {app} by opening this link:\n\n\
                 {action_url}\n\n\
                 The link expires in {expires}. If you did not sign up for {app}, \
                 you can ignore this message.\n"
            ),
            action_url: Some(action_url.to_owned()),
        }
    }

    /// Sends `to` a link to choose a new password (valid for `expires_in`, used once).
    #[must_use]
    pub fn password_reset(&self, to: Email, action_url: &str, expires_in: Duration) -> MailMessage {
        let app = &self.app_name;
        let expires = describe_duration(expires_in);
        MailMessage {
            to,
            subject: format!("Reset your {app} password"),
            text: format!(
                "Hello,\n\n\
                 someone asked to reset the password of your {app} account. \
                 To choose a new password, open this link:\n\n\
                 {action_url}\n\n\
                 The link expires in {expires} and works once. If you did not ask for this, \
                 you can ignore this message: your password stays as it is.\n"
            ),
            action_url: Some(action_url.to_owned()),
        }
    }

    /// Invites `to` into `organization` through `action_url` (valid for `expires_in`).
    #[must_use]
    pub fn organization_invitation(
        &self,
        to: Email,
        organization: &str,
        action_url: &str,
        expires_in: Duration,
    ) -> MailMessage {
        let app = &self.app_name;
        let org = one_line(organization);
        let expires = describe_duration(expires_in);
        MailMessage {
            to,
            subject: format!("You are invited to join {org} on {app}"),
            text: format!(
                "Hello,\n\n\
                 you have been invited to join the organization \"{org}\" on {app}. \
                 To accept, open this link:\n\n\
                 {action_url}\n\n\
                 The invitation expires in {expires}. If you did not expect it, \
                 you can ignore this message.\n"
            ),
            action_url: Some(action_url.to_owned()),
        }
    }
}

/// A security-relevant change to an account, told to its owner by mail (so that a change they
/// did not make does not go unnoticed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityNotice {
    /// A second factor was added (what it is, in words: "an authenticator app (TOTP)").
    FactorAdded(&'static str),
    /// A second factor was removed.
    FactorRemoved(&'static str),
    /// A passkey was added (its name).
    PasskeyAdded(String),
    /// A passkey was removed (its name).
    PasskeyRemoved(String),
    /// A recovery code was used to sign in or re-authenticate; `left` remain.
    RecoveryCodeUsed {
        /// Unused codes left.
        left: u32,
    },
    /// The password was changed.
    PasswordChanged,
    /// An API token was created (its name).
    ApiTokenCreated(String),
    /// A sign-in from a device (browser) the account's sessions had not shown before.
    NewDevice {
        /// The browser's `User-Agent`, if it sent one.
        user_agent: Option<String>,
        /// The client address.
        ip: Option<String>,
    },
}

impl MailTemplates {
    /// Tells `to` about a security-relevant change to their account.
    #[must_use]
    pub fn security_notice(&self, to: Email, notice: &SecurityNotice) -> MailMessage {
        let app = &self.app_name;
        let (subject, what) = match notice {
            SecurityNotice::FactorAdded(what) => (
                format!("A second factor was added to your {app} account"),
                format!("{what} was added as a second factor of your account."),
            ),
            SecurityNotice::FactorRemoved(what) => (
                format!("A second factor was removed from your {app} account"),
                format!("{what} was removed from the second factors of your account."),
            ),
            SecurityNotice::PasskeyAdded(name) => (
                format!("A passkey was added to your {app} account"),
                format!(
                    "The passkey \"{}\" was added to your account.",
                    one_line(name)
                ),
            ),
            SecurityNotice::PasskeyRemoved(name) => (
                format!("A passkey was removed from your {app} account"),
                format!(
                    "The passkey \"{}\" was removed from your account.",
                    one_line(name)
                ),
            ),
            SecurityNotice::RecoveryCodeUsed { left } => (
                format!("A recovery code of your {app} account was used"),
                format!(
                    "One of your recovery codes was used. {left} unused codes are left; \
                     you can make a new set in your security settings."
                ),
            ),
            SecurityNotice::PasswordChanged => (
                format!("Your {app} password was changed"),
                "The password of your account was changed.".to_owned(),
            ),
            SecurityNotice::ApiTokenCreated(name) => (
                format!("A new API token was created on your {app} account"),
                format!(
                    "The API token \"{}\" was created with your account.",
                    one_line(name)
                ),
            ),
            SecurityNotice::NewDevice { user_agent, ip } => (
                format!("New sign-in to your {app} account"),
                format!(
                    "Your account was signed in to from a new device:\n\n  {}\n  from {}",
                    one_line(user_agent.as_deref().unwrap_or("an unknown browser")),
                    one_line(ip.as_deref().unwrap_or("an unknown address")),
                ),
            ),
        };
        MailMessage {
            to,
            subject,
            text: format!(
                "Hello,\n\n{what}\n\n\
                 If this was you, there is nothing to do. If it was not, change your password \
                 and review your second factors and sessions in your {app} security settings \
                 at once.\n"
            ),
            action_url: None,
        }
    }
}

/// A duration in words for "expires in …": whole days from two days up (`7 days`), else whole
/// hours (`24 hours`, `1 hour`), else minutes rounded up (`90 minutes`), at least one minute.
#[must_use]
pub fn describe_duration(d: Duration) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    let secs = u64::try_from(d.whole_seconds()).unwrap_or(0);
    let (n, unit) = if secs >= 2 * DAY && secs % DAY == 0 {
        (secs / DAY, "day")
    } else if secs >= HOUR && secs % HOUR == 0 {
        (secs / HOUR, "hour")
    } else {
        (secs.div_ceil(MINUTE).max(1), "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// One line, trimmed, at most [`MAX_NAME_CHARS`] characters.
fn one_line(name: &str) -> String {
    let line: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Email {
        Email::parse("alice@example.com").unwrap()
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(describe_duration(Duration::hours(24)), "24 hours");
        assert_eq!(describe_duration(Duration::hours(1)), "1 hour");
        assert_eq!(describe_duration(Duration::days(7)), "7 days");
        assert_eq!(describe_duration(Duration::days(2)), "2 days");
        assert_eq!(describe_duration(Duration::minutes(90)), "90 minutes");
        assert_eq!(describe_duration(Duration::seconds(61)), "2 minutes");
        assert_eq!(describe_duration(Duration::minutes(1)), "1 minute");
        assert_eq!(describe_duration(Duration::ZERO), "1 minute");
        assert_eq!(describe_duration(Duration::hours(-3)), "1 minute");
    }

    #[test]
    fn each_message_carries_its_link_and_expiry() {
        let t = MailTemplates::new("Acme");
        let url = "https://acme.test/auth/verify-email?token=T0K";
        let m = t.email_verification(alice(), url, Duration::hours(24));
        assert_eq!(m.to, alice());
        assert_eq!(m.subject, "Verify your email address for Acme");
        assert!(
            m.text.contains(url) && m.text.contains("24 hours"),
            "{}",
            m.text
        );
        assert_eq!(m.action_url.as_deref(), Some(url));

        let m = t.password_reset(alice(), url, Duration::hours(1));
        assert_eq!(m.subject, "Reset your Acme password");
        assert!(m.text.contains(url) && m.text.contains("expires in 1 hour and works once"));

        let m = t.organization_invitation(alice(), "Globex", url, Duration::days(7));
        assert_eq!(m.subject, "You are invited to join Globex on Acme");
        assert!(m.text.contains("\"Globex\"") && m.text.contains("7 days") && m.text.contains(url));
    }

    #[test]
    fn a_crafted_organization_name_cannot_add_header_lines() {
        let t = MailTemplates::new("Acme\r\n");
        let m = t.organization_invitation(
            alice(),
            "Evil\r\nBcc: victim@example.com",
            "https://acme.test/x",
            Duration::days(7),
        );
        assert!(!m.subject.contains(['\r', '\n']), "{:?}", m.subject);
        assert_eq!(
            m.subject,
            "You are invited to join Evil  Bcc: victim@example.com on Acme"
        );
        let long = "x".repeat(500);
        let m = t.organization_invitation(alice(), &long, "https://acme.test/x", Duration::days(7));
        assert!(m.subject.len() < 200);
    }
}
