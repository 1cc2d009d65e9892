//! `OidcProvider` against a real OpenID provider: panva's `oidc-provider` from
//! `tests/oidc-provider` (installed by `cargo xtask test`), started once for this test binary.
//! The full flow (login form, code exchange, ID token checks) runs in the contract suite.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keystead::oauth::{AuthorizationParams, IdentityProvider, ProviderError};
use keystead_oidc::OidcProvider;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Provider {
    issuer: String,
    _child: std::sync::Mutex<Child>,
}

/// The provider of this test process (it exits when our stdin pipe to it closes).
fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules: run `cargo xtask test` (or `npm ci` there)",
            dir.display()
        );
        let mut child = Command::new("node")
            .args(["server.mjs", "0"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node (the test OpenID provider)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let issuer = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("issuer ").map(str::to_owned))
            .expect("the provider prints its issuer");
        std::thread::spawn(move || for _ in lines {});
        Provider {
            issuer,
            _child: std::sync::Mutex::new(child),
        }
    })
}

const VERIFIER: &str = "a-verifier-of-43-characters-or-more-0123456789";

fn params(redirect_uri: &str) -> AuthorizationParams<'_> {
    AuthorizationParams {
        redirect_uri,
        state: "the-state",
        nonce: "the-nonce",
        pkce_verifier: VERIFIER,
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.replace("%20", " ").replace('+', " "))
    })
}

#[tokio::test]
async fn authorization_url_carries_state_nonce_and_the_s256_challenge_of_the_verifier() {
    let issuer = &provider().issuer;
    let oidc = OidcProvider::new("oidc", "SSO", issuer, "authkit-test", "secret").unwrap();
    let redirect = "http://127.0.0.1:3000/auth/oauth/oidc/callback";
    let url = oidc.authorization_url(&params(redirect)).await.unwrap();
    assert!(url.starts_with(&format!("{issuer}/auth?")), "{url}");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    assert_eq!(
        query_param(&url, "code_challenge"),
        Some(challenge),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(&url, "state").as_deref(), Some("the-state"));
    assert_eq!(query_param(&url, "nonce").as_deref(), Some("the-nonce"));
    assert_eq!(query_param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(&url, "client_id").as_deref(),
        Some("authkit-test")
    );
    let scope = query_param(&url, "scope").unwrap();
    for s in ["openid", "email", "profile"] {
        assert!(scope.split(' ').any(|x| x == s), "{scope}");
    }
    assert!(
        !url.contains(VERIFIER),
        "the verifier itself never leaves: {url}"
    );
}

#[tokio::test]
async fn discovery_that_names_another_issuer_is_refused() {
    // The same server under another name: its discovery document says 127.0.0.1.
    let other = provider().issuer.replace("127.0.0.1", "localhost");
    let oidc = OidcProvider::new("oidc", "SSO", &other, "authkit-test", "secret").unwrap();
    let err = oidc
        .authorization_url(&params("http://127.0.0.1:3000/auth/oauth/oidc/callback"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("unexpected issuer")),
        "{err:?}"
    );
}

#[tokio::test]
async fn redirects_from_the_provider_are_not_followed() {
    // A server that sends every request on to the real provider's discovery document.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let target = format!("{}/.well-known/openid-configuration", provider().issuer);
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 2048];
            let _ = socket.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let oidc = OidcProvider::new(
        "oidc",
        "SSO",
        &format!("http://{addr}"),
        "authkit-test",
        "secret",
    )
    .unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        oidc.authorization_url(&params("http://127.0.0.1:3000/auth/oauth/oidc/callback")),
    )
    .await
    .expect("no hang");
    // Followed, the redirect would reach a real discovery document, refused only for naming
    // another issuer; not followed, the 302 itself is the error.
    assert!(
        matches!(&result, Err(ProviderError::Unavailable(m)) if !m.contains("unexpected issuer")),
        "a redirect is an error, not followed: {result:?}"
    );
    server.abort();
}
