//! Our TOTP and an independent implementation agree: Python's `pyotp` (Debian's
//! `python3-pyotp`) reads the `otpauth://` URI keystead issues, makes the code that confirms
//! the enrolment, and accepts the codes keystead's TOTP generator (`totp-rs`, configured from
//! that URI) makes, which keystead accepts too.
//!
//! The test never skips: without Debian's `/usr/bin/python3` (or `$PYOTP_PYTHON`) and
//! `pyotp` it fails, saying to run `cargo xtask setup`, which installs `python3-pyotp`.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;

use keystead::accounts::ClientInfo;
use keystead::mfa::{MfaConfig, MfaKey, SecondFactor};
use keystead::time::{Duration, OffsetDateTime};
use keystead::web::AppOrigin;
use keystead::{Auth, ErrorCode, ManualClock, SecretString};
use keystead_sqlite::SqliteStore;
use serde_json::{Value, json};

const ISSUER: &str = "Keystead Interop";

/// Debian's Python, where `python3-pyotp` installs (a `python3` earlier on `PATH`, such as a
/// pyenv one, does not see Debian's packages); `$PYOTP_PYTHON` overrides it.
fn python() -> String {
    std::env::var("PYOTP_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_owned())
}

/// What pyotp does with the enrolment: parse the URI, make the code at `now`, and verify each
/// of `check` (`{code, at}`) against the secret.
const PYOTP: &str = r#"
import json, sys
import pyotp
request = json.load(sys.stdin)
parsed = pyotp.parse_uri(request["otpauth_url"])
print(json.dumps({
    "secret": parsed.secret,
    "issuer": parsed.issuer,
    "name": parsed.name,
    "digits": parsed.digits,
    "interval": parsed.interval,
    "digest": parsed.digest().name,
    "code": pyotp.TOTP(request["secret"]).at(request["now"]),
    "verified": [pyotp.TOTP(request["secret"]).verify(c["code"], for_time=c["at"]) for c in request["check"]],
}))
"#;

/// Runs [`PYOTP`] on `request`; fails the test (never skips) when Python or pyotp is missing.
fn pyotp(request: &Value) -> Value {
    let python = python();
    let missing = |why: String| -> ! {
        panic!(
            "the TOTP interop test needs `{python}` with Debian's `python3-pyotp` ({why}). \
             Run `cargo xtask setup`, which installs it (or `apt-get install python3-pyotp`)."
        )
    };
    let probe = Command::new(&python)
        .args(["-c", "import pyotp"])
        .output()
        .unwrap_or_else(|e| missing(format!("cannot run it: {e}")));
    if !probe.status.success() {
        let stderr = String::from_utf8_lossy(&probe.stderr);
        missing(
            stderr
                .lines()
                .last()
                .unwrap_or("import pyotp failed")
                .to_owned(),
        );
    }
    let mut child = Command::new(&python)
        .args(["-c", PYOTP])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| missing(format!("cannot run it: {e}")));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write to pyotp");
    let output = child.wait_with_output().expect("python ends");
    assert!(
        output.status.success(),
        "the pyotp script failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the pyotp script prints JSON")
}

/// A code that is not `code` (each digit moved by 5).
fn other_code(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 5) % 10))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyotp_and_keystead_agree_on_the_uri_and_the_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("auth.db")).await.unwrap());
    // A stopped clock at a step boundary plus 7 s: both sides compute at the same instant.
    let start = OffsetDateTime::now_utc().unix_timestamp() / 30 * 30 + 7;
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(start).unwrap(),
    ));
    let (key, _) = MfaKey::generate();
    let auth = Auth::builder(store, AppOrigin::parse("https://app.example.com").unwrap())
        .clock(clock.clone())
        .mfa(MfaConfig::new(key).with_issuer(ISSUER))
        .build();
    let client = ClientInfo::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (user, _) = auth
        .accounts()
        .sign_up(
            "ada@example.com",
            &SecretString::from("correct horse battery staple 42".to_owned()),
            Some("Ada".into()),
            &client,
        )
        .await
        .unwrap();

    let enrolment = auth.mfa().begin_totp(&user, &client).await.unwrap();
    let secret = enrolment.secret.expose().to_owned();
    let url = enrolment.otpauth_url.expose().to_owned();

    // keystead's generator, configured from the URI it issued: the codes of the next step.
    let generator = totp_rs::TOTP::from_url(&url).expect("totp-rs reads keystead's URI");
    let next_at = u64::try_from(start + 30).unwrap();
    let ours = generator.generate(next_at);
    let wrong = other_code(&ours);

    let answer = pyotp(&json!({
        "otpauth_url": url,
        "secret": secret,
        "now": start,
        "check": [{ "code": ours, "at": next_at }, { "code": wrong, "at": next_at }],
    }));

    // The URI, as pyotp reads it.
    assert_eq!(answer["secret"], json!(secret), "{answer}");
    assert_eq!(answer["issuer"], json!(ISSUER), "{answer}");
    assert_eq!(answer["name"], json!("ada@example.com"), "{answer}");
    assert_eq!(answer["digits"], json!(6), "{answer}");
    assert_eq!(answer["interval"], json!(30), "{answer}");
    assert_eq!(answer["digest"], json!("sha1"), "{answer}");

    // pyotp's code confirms the enrolment; a wrong one first is refused.
    let theirs = answer["code"]
        .as_str()
        .expect("pyotp made a code")
        .to_owned();
    assert_eq!(theirs.len(), 6, "{answer}");
    let refused = auth
        .mfa()
        .confirm_totp(&user, &other_code(&theirs), &client)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidCode);
    let codes = auth
        .mfa()
        .confirm_totp(&user, &theirs, &client)
        .await
        .expect("keystead accepts pyotp's code");
    assert_eq!(codes.len(), 10);
    assert!(auth.mfa().status(user.id).await.unwrap().totp);

    // pyotp accepts keystead's code of the next step, and not a wrong one.
    assert_eq!(answer["verified"], json!([true, false]), "{answer}");
    // ...and keystead accepts the same code at that step: it is what keystead makes.
    clock.advance(Duration::seconds(30));
    auth.mfa()
        .check(&user, SecondFactor::Totp(&ours), &client)
        .await
        .expect("keystead accepts its own generator's code");
    // Used once: the same code again is a replay.
    let replay = auth
        .mfa()
        .check(&user, SecondFactor::Totp(&ours), &client)
        .await
        .unwrap_err();
    assert_eq!(replay.code, ErrorCode::InvalidCode);
}
