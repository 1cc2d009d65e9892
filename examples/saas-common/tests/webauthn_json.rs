//! The page script's WebAuthn conversions (`static/app.js`): base64url both ways as
//! webauthn-rs writes and reads it (RFC 4648 §5, no padding), the options the browser's
//! `navigator.credentials` calls take, and the credential JSON sent back. Node runs the script
//! with the browser objects it reads stubbed; the answers are checked against Rust's base64.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Loads `static/app.js` and answers, for each byte string, `[bytesToBase64url(bytes),
/// base64urlToBytes(of Rust's encoding)]`, then the converted options and credentials.
const HARNESS: &str = r#"
const fs = require("fs");
const vm = require("vm");
const source = fs.readFileSync(process.argv[1], "utf8");
const context = { document: { addEventListener() {} }, location: { search: "" }, URLSearchParams, TextEncoder, atob, btoa };
vm.createContext(context);
vm.runInContext(source, context);
const input = JSON.parse(fs.readFileSync(0, "utf8"));
context.input = input;
const out = vm.runInContext(`(() => {
  const bytes = (list) => new Uint8Array(list);
  const list = (view) => Array.from(new Uint8Array(view));
  const encoded = input.cases.map((c) => bytesToBase64url(bytes(c.bytes)));
  const decoded = input.cases.map((c) => list(base64urlToBytes(c.rust)));
  const created = creationOptions({ publicKey: {
    challenge: input.cases[3].rust, rp: { id: "localhost", name: "x" },
    user: { id: input.cases[4].rust, name: "a@example.com", displayName: "A" },
    pubKeyCredParams: [{ type: "public-key", alg: -7 }],
    excludeCredentials: [{ type: "public-key", id: input.cases[5].rust }],
  } });
  const requested = requestOptions({ publicKey: {
    challenge: input.cases[3].rust, rpId: "localhost",
    allowCredentials: [{ type: "public-key", id: input.cases[5].rust }],
  }, mediation: "conditional" });
  const buffer = (c) => bytes(c.bytes).buffer;
  const registration = registrationJson({
    id: input.cases[5].rust, rawId: buffer(input.cases[5]), type: "public-key",
    response: { attestationObject: buffer(input.cases[6]), clientDataJSON: buffer(input.cases[7]), getTransports: () => ["internal"] },
  });
  const assertion = assertionJson({
    id: input.cases[5].rust, rawId: buffer(input.cases[5]), type: "public-key",
    response: { authenticatorData: buffer(input.cases[6]), clientDataJSON: buffer(input.cases[7]),
      signature: buffer(input.cases[8]), userHandle: buffer(input.cases[4]) },
  });
  const noHandle = assertionJson({
    id: "x", rawId: buffer(input.cases[5]), type: "public-key",
    response: { authenticatorData: buffer(input.cases[6]), clientDataJSON: buffer(input.cases[7]),
      signature: buffer(input.cases[8]), userHandle: null },
  });
  return JSON.stringify({
    encoded, decoded,
    created: { challenge: list(created.publicKey.challenge), user: list(created.publicKey.user.id),
      userName: created.publicKey.user.name, exclude: list(created.publicKey.excludeCredentials[0].id),
      rp: created.publicKey.rp.id, keys: Object.keys(created) },
    requested: { challenge: list(requested.publicKey.challenge), allow: list(requested.publicKey.allowCredentials[0].id),
      keys: Object.keys(requested) },
    registration, assertion, noHandle,
  });
})()`, context);
process.stdout.write(out);
"#;

fn run(input: &serde_json::Value) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/static/app.js");
    let mut child = Command::new("node")
        .arg("-e")
        .arg(HARNESS)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (this test needs node on PATH)");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to node");
    let output = child.wait_with_output().expect("node ends");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the harness prints JSON")
}

#[test]
fn webauthn_fields_go_both_ways_as_base64url_without_padding() {
    // Lengths 0..=70 (every padding case), every byte value, a fixed pseudo-random fill.
    let mut state: u32 = 0x1234_5678;
    let mut cases: Vec<Vec<u8>> = (0..=70usize)
        .map(|len| {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state.to_le_bytes()[0]
                })
                .collect()
        })
        .collect();
    cases.push((0..=255).collect());
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|bytes| serde_json::json!({ "bytes": bytes, "rust": URL_SAFE_NO_PAD.encode(bytes) }))
        .collect();
    let out = run(&serde_json::json!({ "cases": input }));

    for (i, bytes) in cases.iter().enumerate() {
        let ours = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            out["encoded"][i],
            serde_json::json!(ours),
            "encoding {bytes:?}"
        );
        assert_eq!(
            out["decoded"][i],
            serde_json::json!(bytes),
            "decoding {ours}"
        );
    }

    let b = |i: usize| serde_json::json!(cases[i]);
    let s = |i: usize| serde_json::json!(URL_SAFE_NO_PAD.encode(&cases[i]));
    // The options: binary where the browser wants it, the rest as it was.
    assert_eq!(out["created"]["challenge"], b(3));
    assert_eq!(out["created"]["user"], b(4));
    assert_eq!(out["created"]["userName"], "a@example.com");
    assert_eq!(out["created"]["exclude"], b(5));
    assert_eq!(out["created"]["rp"], "localhost");
    assert_eq!(out["created"]["keys"], serde_json::json!(["publicKey"]));
    assert_eq!(out["requested"]["challenge"], b(3));
    assert_eq!(out["requested"]["allow"], b(5));
    // A button press is a modal request: no conditional mediation.
    assert_eq!(out["requested"]["keys"], serde_json::json!(["publicKey"]));

    // The answers, in webauthn-rs's shapes.
    assert_eq!(
        out["registration"],
        serde_json::json!({
            "id": s(5), "rawId": s(5), "type": "public-key",
            "response": { "attestationObject": s(6), "clientDataJSON": s(7), "transports": ["internal"] },
            "extensions": {},
        })
    );
    assert_eq!(
        out["assertion"],
        serde_json::json!({
            "id": s(5), "rawId": s(5), "type": "public-key",
            "response": { "authenticatorData": s(6), "clientDataJSON": s(7), "signature": s(8),
                "userHandle": s(4) },
            "extensions": {},
        })
    );
    assert_eq!(
        out["noHandle"]["response"]["userHandle"],
        serde_json::Value::Null
    );
}
