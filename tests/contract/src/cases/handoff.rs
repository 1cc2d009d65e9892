//! The hand-off from the old provider (`HANDOFF_*`), over HTTP: a user imported with `authctl`
//! (their Clerk id kept as external id) who arrives with only Clerk's `__session` cookie is
//! signed in with one of our session cookies on the spot, once per old session, and only inside
//! the window. A stand-in issuer serves its JWKS over HTTP and signs RS256 tokens shaped like
//! Clerk's (`sub`, `sid`, `iss`, `azp`, `exp`, `iat`, `nbf`).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::app::AppUnderTest;
use crate::client::Client;

/// The stand-in old provider's signing key (test-only, see crates/keystead/tests/data).
const RSA_PEM: &str = include_str!("../../../../crates/keystead/tests/data/handoff-rsa.pem");
const KID: &str = "stand-in-1";

/// The old provider: an issuer URL whose JWKS it serves over HTTP, and a signer.
struct StandInIssuer {
    issuer: String,
    key: EncodingKey,
    server: tokio::task::JoinHandle<()>,
}

impl StandInIssuer {
    async fn start() -> Self {
        let body: String = RSA_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("the test key is base64");
        let key = EncodingKey::from_rsa_der(&der);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("a JWK");
        jwk.common.key_id = Some(KID.to_owned());
        let body = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("JSON");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0_u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            issuer,
            key,
            server,
        }
    }

    /// A session token for Clerk user `sub` in Clerk session `sid`, for the app at `azp`.
    fn token(&self, sub: &str, sid: &str, azp: &str) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        let claims = json!({
            "iss": self.issuer, "sub": sub, "sid": sid, "azp": azp,
            "iat": now, "nbf": now - 10, "exp": now + 60,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).expect("a signed token")
    }

    fn env(&self, until: OffsetDateTime) -> Vec<(&'static str, String)> {
        vec![
            ("HANDOFF_ISSUER", self.issuer.clone()),
            (
                "HANDOFF_JWKS_URL",
                format!("{}/.well-known/jwks.json", self.issuer),
            ),
            ("HANDOFF_UNTIL", until.format(&Rfc3339).unwrap()),
        ]
    }
}

impl Drop for StandInIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `authctl`, built beside the app (`cargo test --workspace` and `cargo xtask test` build it).
fn authctl() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let debug = exe
        .ancestors()
        .find(|dir| dir.join("authctl").is_file())
        .unwrap_or_else(|| {
            panic!(
                "authctl is not built beside {}: run `cargo build -p keystead-cli`",
                exe.display()
            )
        });
    debug.join("authctl")
}

/// Imports a user as `authctl users create` does, with a Clerk id as external id.
async fn import_user(app: &AppUnderTest, email: &str, clerk_id: &str) {
    let output = tokio::process::Command::new(authctl())
        .args([
            "users",
            "create",
            "--email",
            email,
            "--verified",
            "--external-id",
            clerk_id,
        ])
        .env("DATABASE_URL", app.database_url())
        .env("AUTH_MAIL_DIR", app.mail_dir())
        .env("AUTHCTL_ACTOR", "contract-suite")
        .output()
        .await
        .expect("authctl runs");
    assert!(
        output.status.success(),
        "authctl users create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn session_with_old_cookie(client: &Client, token: &str) -> crate::client::Reply {
    client
        .get("/auth/session")
        .header("cookie", &format!("__session={token}"))
        .send()
        .await
}

/// Inside the window, the old provider's session becomes one of ours on the first request
/// (Set-Cookie, and that request is already the user); the next request with only our cookie
/// is the user; the same old session is not swapped a second time; the swap is audited.
pub async fn handoff_swaps_the_old_providers_session_for_ours_once(app: &AppUnderTest) {
    let issuer = StandInIssuer::start().await;
    let until = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let env = issuer.env(until);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = app.sibling_with(&env).await;
    import_user(&app, "moved@example.com", "user_2movedOverTheWeekend").await;
    let client = app.client();
    let token = issuer.token("user_2movedOverTheWeekend", "sess_2abc", app.origin());

    let first = session_with_old_cookie(client, &token).await;
    let first = first.expect(200);
    assert_eq!(
        first.json()["user"]["email"],
        "moved@example.com",
        "{first}"
    );
    let ours = first.session_cookie();

    let next = client.get_with("/auth/session", &ours).await;
    let next = next.expect(200);
    assert_eq!(next.json()["user"]["email"], "moved@example.com");

    // The same old session again (a replayed or copied cookie) is not swapped twice.
    let again = session_with_old_cookie(client, &token).await;
    let again = again.expect(401);
    assert!(again.session_set_cookie().is_none(), "{again}");

    // A token for a user nobody imported, and one for another app (`azp`), are no one.
    let stranger = issuer.token("user_2neverImported", "sess_2def", app.origin());
    session_with_old_cookie(client, &stranger).await.expect(401);
    let elsewhere = issuer.token(
        "user_2movedOverTheWeekend",
        "sess_2ghi",
        "https://evil.example",
    );
    session_with_old_cookie(client, &elsewhere)
        .await
        .expect(401);

    // The user's sessions: the swapped one, listed like any other.
    let sessions = client.get_with("/auth/sessions", &ours).await;
    let sessions = sessions.expect(200);
    assert_eq!(sessions.json().as_array().map(Vec::len), Some(1));
    app.finish().await;
}

/// The window is time-boxed: once `HANDOFF_UNTIL` has passed, the old token is refused (the
/// request is anonymous and gets no cookie of ours).
pub async fn handoff_refuses_old_sessions_once_the_window_closed(app: &AppUnderTest) {
    let issuer = StandInIssuer::start().await;
    let until = OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let env = issuer.env(until);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = app.sibling_with(&env).await;
    import_user(&app, "late@example.com", "user_2cameTooLate").await;
    let remaining = until - OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(remaining.whole_milliseconds()).unwrap_or(0) + 500,
    ))
    .await;
    let token = issuer.token("user_2cameTooLate", "sess_2late", app.origin());
    let reply = session_with_old_cookie(app.client(), &token).await;
    let reply = reply.expect(401);
    assert!(reply.session_set_cookie().is_none(), "{reply}");
    let value: Value = reply.json();
    assert_eq!(value["code"], "unauthenticated", "{value}");
    app.finish().await;
}
