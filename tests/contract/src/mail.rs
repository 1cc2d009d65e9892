//! Reading the development mailer's directory: one JSON file per message.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How long [`AppUnderTest::latest_mail_to`](crate::AppUnderTest::latest_mail_to) waits.
pub(crate) const MAIL_WAIT: Duration = Duration::from_secs(5);

/// One message the app mailed: a file `{"to", "subject", "text", "action_url"}` in
/// `AUTH_MAIL_DIR`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The link the user would click, holding the token; `None` for a message without one.
    pub action_url: Option<String>,
}

impl Mail {
    /// The link of this message.
    ///
    /// # Panics
    /// When the message has none.
    #[must_use]
    pub fn action_url(&self) -> &str {
        self.action_url
            .as_deref()
            .unwrap_or_else(|| panic!("the mail {self:?} has no action_url"))
    }

    /// The `token` query parameter of this message's link.
    ///
    /// # Panics
    /// When the message has no link or the link no token.
    #[must_use]
    pub fn token(&self) -> String {
        token_from(self.action_url())
    }
}

/// The `token` query parameter of `action_url`.
///
/// # Panics
/// When `action_url` is not an absolute URL with a non-empty `token` parameter.
#[must_use]
pub fn token_from(action_url: &str) -> String {
    let url = reqwest::Url::parse(action_url)
        .unwrap_or_else(|e| panic!("the action_url {action_url:?} is not a URL: {e}"));
    url.query_pairs()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|token| !token.is_empty())
        .unwrap_or_else(|| panic!("the action_url {action_url:?} has no token"))
}

/// The messages in `dir` addressed to `to` (case-insensitively; every message when `to` is
/// empty), oldest first. Files are taken in name order (the mailer names them by time); hidden
/// files (the mailer's temporary ones) and files that do not parse are skipped.
pub(crate) fn read_dir(dir: &Path, to: &str) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json") && !name.starts_with('.'))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|name| std::fs::read(dir.join(name)).ok())
        .filter_map(|bytes| serde_json::from_slice::<Mail>(&bytes).ok())
        .filter(|mail| to.is_empty() || mail.to.eq_ignore_ascii_case(to))
        .collect()
}

/// The newest message in `dir` to `to` for which `accept` holds, polling for up to `wait`.
pub(crate) async fn wait_for(
    dir: &Path,
    to: &str,
    accept: impl Fn(&Mail) -> bool,
    wait: Duration,
) -> Option<Mail> {
    let started = Instant::now();
    loop {
        if let Some(mail) = read_dir(dir, to)
            .into_iter()
            .rev()
            .find(|mail| accept(mail))
        {
            return Some(mail);
        }
        if started.elapsed() >= wait {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, to: &str, subject: &str, action_url: Option<&str>) {
        let body = serde_json::json!({
            "to": to, "subject": subject, "text": "hello", "action_url": action_url,
        });
        std::fs::write(dir.join(name), serde_json::to_vec(&body).unwrap()).unwrap();
    }

    #[test]
    fn token_comes_from_the_query() {
        assert_eq!(
            token_from("http://127.0.0.1:1/auth/verify-email?token=abc-DEF_123"),
            "abc-DEF_123"
        );
        assert_eq!(
            token_from("http://127.0.0.1:1/reset-password?x=1&token=a%2Bb"),
            "a+b"
        );
    }

    #[test]
    #[should_panic(expected = "has no token")]
    fn a_link_without_token_is_refused() {
        let _ = token_from("http://127.0.0.1:1/reset-password?token=");
    }

    #[test]
    fn messages_are_read_in_name_order_and_filtered_by_recipient() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "00000000000000000002-b.json",
            "Ada@Example.com",
            "second",
            None,
        );
        write(
            dir.path(),
            "00000000000000000001-a.json",
            "ada@example.com",
            "first",
            Some("http://x/?token=t"),
        );
        write(
            dir.path(),
            "00000000000000000003-c.json",
            "bob@example.com",
            "other",
            None,
        );
        write(
            dir.path(),
            ".00000000000000000004-d.json.tmp",
            "ada@example.com",
            "partial",
            None,
        );
        std::fs::write(dir.path().join("00000000000000000005-e.json"), b"{\"to\":").unwrap();

        let subjects: Vec<_> = read_dir(dir.path(), "ADA@example.com")
            .into_iter()
            .map(|mail| mail.subject)
            .collect();
        assert_eq!(subjects, ["first", "second"]);
        assert_eq!(read_dir(dir.path(), "").len(), 3);
        assert!(read_dir(&dir.path().join("missing"), "").is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_sees_a_message_that_arrives_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            write(
                &path,
                "00000000000000000001-a.json",
                "ada@example.com",
                "late",
                Some("http://x/?token=t"),
            );
        });
        let mail = wait_for(
            dir.path(),
            "ada@example.com",
            |m| m.subject == "late",
            MAIL_WAIT,
        )
        .await
        .expect("the late mail");
        assert_eq!(mail.token(), "t");
        writer.await.unwrap();

        let none = wait_for(
            dir.path(),
            "ada@example.com",
            |m| m.subject == "never",
            Duration::from_millis(100),
        )
        .await;
        assert_eq!(none, None);
    }
}
