//! Interop: an API token issued by keystead verifies with an independent JOSE implementation
//! (Python's PyJWT with `cryptography`), given only the app's JWKS: signature, `alg: EdDSA`,
//! `typ`, `iss`, `aud` and the claims. A tampered token must fail there too.
//!
//! Needs `python3` with `jwt` and `cryptography` (`cargo xtask setup` installs them); the test
//! fails, not skips, when they are missing.

use std::process::Command;
use std::sync::Arc;

use keystead::principal::{Credential, Principal};
use keystead::tokens::{DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::web::AppOrigin;
use keystead::{Auth, AuthStore, Clock, Role, SessionId, SystemClock};
use keystead_conformance::fixtures;
use keystead_sqlite::SqliteStore;
use time::Duration;

const ORIGIN: &str = "http://interop.test";

/// The verifier: loads the JWKS, picks the key by the token's `kid`, and decodes with the
/// algorithm, issuer and audience pinned. Prints the claims as JSON.
const VERIFY: &str = r#"
import json, sys
import jwt
from jwt import PyJWK
directory, issuer, audience = sys.argv[1], sys.argv[2], sys.argv[3]
jwks = json.load(open(directory + "/jwks.json"))
token = open(directory + "/token.txt").read().strip()
header = jwt.get_unverified_header(token)
assert header["alg"] == "EdDSA", header
assert header["typ"] == "at+jwt", header
entry = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
key = PyJWK(entry)
assert key.algorithm_name == "EdDSA", key.algorithm_name
claims = jwt.decode(
    token,
    key.key,
    algorithms=["EdDSA"],
    issuer=issuer,
    audience=audience,
    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
)
print(json.dumps(claims))
"#;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails (does not skip) when the verifier cannot run.
fn require_python_packages() {
    let output = Command::new(python())
        .args(["-c", "import jwt, cryptography; from jwt import PyJWK"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run `cargo xtask setup`", python()));
    assert!(
        output.status.success(),
        "python3 lacks pyjwt or cryptography ({}); run `cargo xtask setup`",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Runs the verifier on `token` (without the `sk_live_` prefix) and `jwks` in `dir`.
fn pyjwt_verify(
    dir: &std::path::Path,
    jwks: &serde_json::Value,
    token: &str,
) -> std::process::Output {
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).expect("write the JWKS");
    std::fs::write(dir.join("token.txt"), token).expect("write the token");
    Command::new(python())
        .args(["-c", VERIFY])
        .arg(dir)
        .arg(ORIGIN)
        .arg(format!("{ORIGIN}/api"))
        .output()
        .expect("run python3")
}

#[tokio::test]
async fn api_token_verifies_with_pyjwt_against_the_jwks() {
    require_python_packages();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Arc<dyn AuthStore> = Arc::new(
        SqliteStore::open(dir.path().join("interop.db"))
            .await
            .expect("open"),
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(dir.path().join("keys")).expect("a key store")),
        clock.clone(),
        KeyAlgorithm::EdDSA,
        Duration::days(365),
    )
    .await
    .expect("a key ring");
    let auth = Auth::builder(store.clone(), AppOrigin::parse(ORIGIN).expect("an origin"))
        .mailer(Arc::new(keystead::mail::MemoryMailer::default()))
        .api_tokens(keys, TokenConfig::default())
        .build();
    let now = clock.now();
    let user = store
        .create_user(&fixtures::new_user("interop@example.com"))
        .await
        .expect("a user");
    let org = fixtures::organization("interop", now);
    store
        .create_organization(&org, user.id)
        .await
        .expect("an org");
    let principal = Principal::new(
        user.clone(),
        Credential::Session {
            id: SessionId::new(),
            expires_at: now + Duration::days(1),
            authenticated_at: now,
        },
        Some((org.id, Role::OWNER)),
        auth.roles(),
    );
    let tokens = auth.tokens().expect("tokens are on");
    let scopes = vec!["read:projects".to_owned(), "write:deployments".to_owned()];
    let (record, token) = tokens
        .issue(&principal, auth.roles(), "interop", &scopes, Some(7))
        .await
        .expect("issue");
    let jws = token
        .expose()
        .strip_prefix("sk_live_")
        .expect("an sk_live_ token")
        .to_owned();
    let jwks = tokens.keys().jwks();

    let out_dir = tempfile::tempdir().expect("a temp dir");
    let output = pyjwt_verify(out_dir.path(), &jwks, &jws);
    assert!(
        output.status.success(),
        "PyJWT refused our token: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let claims: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the claims as JSON");
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["org"], org.id.to_string());
    assert_eq!(claims["jti"], record.id.to_string());
    assert_eq!(claims["iss"], ORIGIN);
    assert_eq!(claims["aud"], format!("{ORIGIN}/api"));
    assert_eq!(
        claims["scopes"],
        serde_json::json!(["read:projects", "write:deployments"])
    );
    assert_eq!(claims["exp"], record.expires_at.unix_timestamp());

    // The same verifier refuses a token whose claims were changed under the old signature, and
    // a genuine token checked against another audience: it is really checking.
    let (input, signature) = jws.rsplit_once('.').expect("a signature");
    let (header, _) = input.split_once('.').expect("a payload");
    let mut forged_claims = claims;
    forged_claims["scopes"] = serde_json::json!(["billing:manage"]);
    let forged_payload = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_claims.to_string())
    };
    let forged = format!("{header}.{forged_payload}.{signature}");
    let output = pyjwt_verify(out_dir.path(), &jwks, &forged);
    assert!(!output.status.success(), "PyJWT accepted a tampered token");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("InvalidSignatureError"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let other_key = serde_json::json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
        "kid": jwks["keys"][0]["kid"],
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }]});
    let output = pyjwt_verify(out_dir.path(), &other_key, &jws);
    assert!(
        !output.status.success(),
        "PyJWT accepted a token under another key"
    );
}
