//! `SmtpMailer` against a real SMTP server: Python's `aiosmtpd` writing a maildir, read back
//! with Python's own `email` parser (an independent MIME decoder).
//!
//! Needs `python3` with `aiosmtpd`; `cargo xtask test` installs it. Without it these tests fail.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keystead::Email;
use keystead::mail::{
    MailError, MailMessage, MailTemplates, Mailer, SmtpConfig, SmtpMailer, SmtpTls,
};
use keystead::secret::SecretString;
use serde_json::Value;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// An `aiosmtpd` server on a free loopback port, killed on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> Self {
        let has_aiosmtpd = Command::new(python())
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            has_aiosmtpd,
            "these tests need `{}` with the `aiosmtpd` package: run `cargo xtask test` \
             (or `pip install aiosmtpd`)",
            python()
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // Python's `Maildir` creates its `tmp`, `new` and `cur` only in a new directory.
            .arg(maildir.path().join("maildir"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let mut server = Self {
            child,
            port,
            maildir,
        };
        server.wait_until_listening();
        server
    }

    /// Polls the port: the server is a separate process, its start-up takes real time.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                panic!("aiosmtpd exited ({status}): {stderr}");
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn mailer(&self) -> SmtpMailer {
        let config = SmtpConfig::builder("127.0.0.1", from())
            .from_name("Acme Bücher")
            .port(self.port)
            .tls(SmtpTls::None)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        SmtpMailer::new(config).unwrap()
    }

    /// Every delivered message, decoded by Python's `email` package, oldest first.
    fn received(&self) -> Vec<Value> {
        read_maildir(&self.maildir.path().join("maildir"))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DECODE: &str = r#"
import email, email.policy, json, os, sys
new = os.path.join(sys.argv[1], "new")
out = []
for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
    with open(os.path.join(new, name), "rb") as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    out.append({
        "to": str(m["To"]),
        "from": str(m["From"]),
        "subject": str(m["Subject"]),
        "rcpt": str(m["X-RcptTo"]),
        "content_type": m.get_content_type(),
        "charset": m.get_content_charset(),
        "has_message_id": m["Message-ID"] is not None,
        "has_date": m["Date"] is not None,
        "body": m.get_content(),
    })
print(json.dumps(out))
"#;

fn read_maildir(dir: &Path) -> Vec<Value> {
    let output = Command::new(python())
        .args(["-c", DECODE])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    value.as_array().unwrap().clone()
}

fn from() -> Email {
    Email::parse("no-reply@acme.test").unwrap()
}

fn alice() -> Email {
    Email::parse("alice@example.com").unwrap()
}

/// A body as Python decodes it, with `\n` line ends and without trailing line ends (SMTP's
/// end-of-data sequence adds one).
fn body(v: &Value) -> String {
    v["body"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n")
        .trim_end_matches('\n')
        .to_owned()
}

#[tokio::test]
async fn delivers_a_non_ascii_message_that_decodes_to_the_same_subject_and_text() {
    let server = SmtpServer::start();
    let mailer = server.mailer();
    let url = "https://acme.test/auth/password-reset?token=Zm9vYmFy_-0123456789abcdefghijklmnopqrstuvwxyz";
    let message = MailMessage {
        to: alice(),
        subject: "Passwort zurücksetzen — パスワード".to_owned(),
        text: format!(
            "Grüße aus Köln! 🚀\n\nÖffnen Sie: {url}\n{}\n",
            "é".repeat(300)
        ),
        action_url: Some(url.to_owned()),
    };
    mailer.send(&message).await.unwrap();

    let received = server.received();
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m["to"], "alice@example.com");
    assert_eq!(m["rcpt"], "alice@example.com");
    assert_eq!(m["from"], "Acme Bücher <no-reply@acme.test>");
    assert_eq!(m["subject"], message.subject.as_str());
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["charset"], "utf-8");
    assert_eq!(m["has_message_id"], true);
    assert_eq!(m["has_date"], true);
    assert_eq!(body(m), message.text.trim_end_matches('\n'));
}

#[tokio::test]
async fn the_three_flow_messages_arrive_with_their_links_intact() {
    let server = SmtpServer::start();
    let mailer = server.mailer();
    let templates = MailTemplates::new("Acme");
    let url = |path: &str| format!("https://acme.test{path}?token={}", "A".repeat(43));
    let messages = [
        templates.email_verification(
            alice(),
            &url("/auth/verify-email"),
            time::Duration::hours(24),
        ),
        templates.password_reset(alice(), &url("/reset-password"), time::Duration::hours(1)),
        templates.organization_invitation(
            alice(),
            "Globex Ünited",
            &url("/invitations/accept"),
            time::Duration::days(7),
        ),
    ];
    for m in &messages {
        mailer.send(m).await.unwrap();
    }
    let received = server.received();
    assert_eq!(received.len(), 3);
    for sent in &messages {
        let got = received
            .iter()
            .find(|r| r["subject"] == sent.subject.as_str())
            .unwrap_or_else(|| panic!("{:?} not received", sent.subject));
        let text = body(got);
        assert_eq!(text, sent.text.trim_end_matches('\n'));
        assert!(text.contains(sent.action_url.as_deref().unwrap()));
    }
}

#[tokio::test]
async fn a_subject_with_a_line_break_is_refused_and_nothing_is_sent() {
    let server = SmtpServer::start();
    let mailer = server.mailer();
    let mut message = MailTemplates::new("Acme").password_reset(
        alice(),
        "https://acme.test/r?token=t",
        time::Duration::hours(1),
    );
    message.subject = "Reset\r\nBcc: victim@evil.test".to_owned();
    let err = mailer.send(&message).await.unwrap_err();
    assert!(matches!(err, MailError::InvalidMessage(_)), "{err:?}");
    // A later, valid message is the only one delivered.
    message.subject = "Reset".to_owned();
    mailer.send(&message).await.unwrap();
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["rcpt"], "alice@example.com");
}

#[tokio::test]
async fn starttls_is_required_so_a_server_without_it_gets_nothing() {
    // The server offers no STARTTLS, as an attacker stripping it from the EHLO answer would.
    let server = SmtpServer::start();
    let config = SmtpConfig::builder("127.0.0.1", from())
        .port(server.port)
        .tls(SmtpTls::StartTls)
        .credentials("mailer", SecretString::new("hunter2-smtp-password"))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mailer = SmtpMailer::new(config).unwrap();
    let message = MailTemplates::new("Acme").password_reset(
        alice(),
        "https://acme.test/r?token=secret-token",
        time::Duration::hours(1),
    );
    let err = mailer.send(&message).await.unwrap_err();
    assert!(matches!(err, MailError::Smtp { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2-smtp-password"), "{shown}");
    assert!(!shown.contains("secret-token"), "{shown}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn errors_never_show_the_smtp_password() {
    // Over a loopback connection without TLS, aiosmtpd does not offer AUTH: the login fails.
    let server = SmtpServer::start();
    let config = SmtpConfig::builder("127.0.0.1", from())
        .port(server.port)
        .tls(SmtpTls::None)
        .credentials("mailer", SecretString::new("hunter2-smtp-password"))
        .build()
        .unwrap();
    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&MailTemplates::new("Acme").email_verification(
            alice(),
            "https://acme.test/v?token=t",
            time::Duration::hours(24),
        ))
        .await
        .unwrap_err();
    let MailError::Smtp { retryable, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        !retryable,
        "a login that cannot work is not retried: {err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = SmtpConfig::builder("127.0.0.1", from())
        .port(port)
        .tls(SmtpTls::None)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&MailTemplates::new("Acme").email_verification(
            alice(),
            "https://acme.test/v?token=t",
            time::Duration::hours(24),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MailError::Smtp {
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn cleartext_smtp_is_refused_for_a_remote_host() {
    let err = SmtpConfig::builder("smtp.example.com", from())
        .tls(SmtpTls::None)
        .build()
        .unwrap_err();
    assert_eq!(err, keystead::mail::SmtpConfigError::CleartextToRemoteHost);
    assert!(err.to_string().contains("loopback"));
}
