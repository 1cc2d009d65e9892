//! Our password hashes and those of other implementations verify both ways, live.
//!
//! Python's `bcrypt` and `argon2-cffi` make hashes (tests/interop/password_interop.py) that
//! keystead must verify, and check the hashes keystead makes. These tests never skip: without
//! `python3` (or `$PYTHON`) and the two packages they fail, saying to run `cargo xtask test`,
//! which installs them. `password_fixtures.rs` checks committed foreign hashes without Python.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use keystead::{PasswordConfig, PasswordHasher, SecretString, Verified};
use serde::Deserialize;
use serde_json::json;

/// ASCII, Latin-1, CJK, emoji, longer than bcrypt's 72 bytes, and cut by bcrypt mid-character.
const PASSWORDS: &[&str] = &[
    "correct horse battery staple",
    "pässwörd",
    "日本語のパスワード",
    "emoji 🔑🦀 key",
    "ab",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "aéééééééééééééééééééééééééééééééééééééééé",
];

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/password_interop.py")
}

/// Runs the helper script; fails the test (never skips) when Python or its packages are missing.
fn run_script(command: &str, input: &serde_json::Value) -> serde_json::Value {
    let python = python();
    let missing = |why: String| -> ! {
        panic!(
            "the password interop tests need `{python}` with the `bcrypt` and `argon2-cffi` \
             packages ({why}). Run `cargo xtask test`, which installs them, or \
             `{python} -m pip install bcrypt argon2-cffi`."
        )
    };
    let probe = Command::new(&python)
        .args(["-c", "import bcrypt, argon2"])
        .output()
        .unwrap_or_else(|e| missing(format!("cannot run it: {e}")));
    if !probe.status.success() {
        let stderr = String::from_utf8_lossy(&probe.stderr);
        missing(stderr.lines().last().unwrap_or("import failed").to_owned());
    }

    let mut child = Command::new(&python)
        .arg(script())
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| missing(format!("cannot run it: {e}")));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to the script");
    let output = child.wait_with_output().expect("the script ends");
    assert!(
        output.status.success(),
        "password_interop.py {command} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

#[derive(Debug, Deserialize)]
struct Foreign {
    kind: String,
    password: String,
    hash: String,
    needs_rehash: bool,
}

#[derive(Debug, Deserialize)]
struct PythonVerdict {
    valid: bool,
    wrong_valid: bool,
    params: PythonParams,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
struct PythonParams {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    memory_cost: u32,
    time_cost: u32,
    parallelism: u32,
    salt_len: usize,
    hash_len: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_made_by_python_bcrypt_and_argon2_cffi_verify_here() {
    let versions = run_script("versions", &json!(null));
    eprintln!("python packages: {versions}");
    let made: Vec<Foreign> =
        serde_json::from_value(run_script("make", &json!(PASSWORDS))).expect("make's output");
    let kinds = [
        "bcrypt_2b",
        "bcrypt_2a",
        "bcrypt_2y",
        "argon2id_cffi_default",
        "argon2id_same_params",
        "argon2i",
        "argon2d",
        "argon2id_v16",
    ];
    assert_eq!(made.len(), PASSWORDS.len() * kinds.len());
    for kind in kinds {
        assert_eq!(
            made.iter().filter(|f| f.kind == kind).count(),
            PASSWORDS.len()
        );
    }

    let hasher = PasswordHasher::new(PasswordConfig::default());
    for foreign in &made {
        let what = format!(
            "{} of {:?}: {}",
            foreign.kind, foreign.password, foreign.hash
        );
        let hash = SecretString::new(foreign.hash.as_str());
        let right = SecretString::new(foreign.password.as_str());
        let wrong = SecretString::new(format!("!{}", foreign.password));
        assert_eq!(
            hasher.verify(&right, &hash).await.expect(&what),
            Verified::Valid {
                needs_rehash: foreign.needs_rehash
            },
            "{what}"
        );
        assert_eq!(
            hasher.verify(&wrong, &hash).await.expect(&what),
            Verified::Invalid,
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_hashes_verify_in_argon2_cffi() {
    let default = PasswordHasher::new(PasswordConfig::default());
    let custom = PasswordHasher::new(
        PasswordConfig::default()
            .argon2_params(8192, 3, 2)
            .expect("valid costs"),
    );
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for password in PASSWORDS {
        for (hasher, (m, t, p)) in [(&default, (19_456, 2, 1)), (&custom, (8192, 3, 2))] {
            let hash = hasher
                .hash(&SecretString::new(*password))
                .await
                .expect("hash");
            items.push(json!({ "password": password, "hash": hash.expose() }));
            expected.push(PythonParams {
                kind: "id".to_owned(),
                version: 19,
                memory_cost: m,
                time_cost: t,
                parallelism: p,
                salt_len: 16,
                hash_len: 32,
            });
        }
    }
    let verdicts: Vec<PythonVerdict> =
        serde_json::from_value(run_script("verify", &json!(items))).expect("verify's output");
    assert_eq!(verdicts.len(), items.len());
    for ((verdict, item), params) in verdicts.into_iter().zip(&items).zip(expected) {
        assert!(verdict.valid, "argon2-cffi rejects {item}");
        assert!(
            !verdict.wrong_valid,
            "argon2-cffi accepts a wrong password for {item}"
        );
        assert_eq!(verdict.params, params, "{item}");
    }
}
