//! A software WebAuthn authenticator with its browser, for tests: it makes discoverable P-256
//! credentials, answers registrations with `none` attestation objects (CBOR, COSE keys) and
//! signs assertions with ECDSA over the authenticator data and the client data, as a browser
//! and a platform authenticator would. Its answers are the JSON the library's passkey routes
//! take (`RegisterPublicKeyCredential`, `PublicKeyCredential`, binary fields base64url).
//!
//! ```no_run
//! # let (creation_options, request_options) = (serde_json::json!({}), serde_json::json!({}));
//! use keystead_conformance::webauthn::SoftAuthenticator;
//!
//! let mut device = SoftAuthenticator::default();
//! let credential = device.register(&creation_options, "https://app.example", false);
//! let assertion = device.assert(&request_options, 0, "https://app.example");
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value as Cbor;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
}

/// One credential the software authenticator holds.
struct Credential {
    id: Vec<u8>,
    key: SigningKey,
    user_handle: Vec<u8>,
    counter: u32,
    /// Backup eligible and backed up (a synced passkey).
    synced: bool,
}

/// A software authenticator with its browser: it makes discoverable credentials and answers
/// with real signatures.
#[derive(Default)]
pub struct SoftAuthenticator {
    credentials: Vec<Credential>,
}

impl std::fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("credentials", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

impl SoftAuthenticator {
    /// `navigator.credentials.create(options)` from `origin`: a new credential, its
    /// `RegisterPublicKeyCredential` JSON.
    #[must_use]
    pub fn register(&mut self, options: &Value, origin: &str, synced: bool) -> Value {
        let public_key = &options["publicKey"];
        let rp_id = public_key["rp"]["id"].as_str().expect("rp.id");
        let excluded: Vec<Vec<u8>> = public_key["excludeCredentials"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| unb64(c["id"].as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !self.credentials.iter().any(|c| excluded.contains(&c.id)),
            "this authenticator holds an excluded credential"
        );
        let key = loop {
            if let Ok(key) = SigningKey::from_slice(&random::<32>()) {
                break key;
            }
        };
        let id = random::<32>().to_vec();
        let point = key.verifying_key().to_encoded_point(false);
        let cose_key = cbor(&Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
            (
                Cbor::Integer((-2).into()),
                Cbor::Bytes(point.x().unwrap().to_vec()),
            ),
            (
                Cbor::Integer((-3).into()),
                Cbor::Bytes(point.y().unwrap().to_vec()),
            ),
        ]));
        // UP, UV, AT; BE and BS for a synced passkey.
        let flags = 0x01 | 0x04 | 0x40 | if synced { 0x08 | 0x10 } else { 0 };
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key);
        let attestation = cbor(&Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]));
        let client_data = client_data("webauthn.create", public_key, origin);
        self.credentials.push(Credential {
            id: id.clone(),
            key,
            user_handle: unb64(public_key["user"]["id"].as_str().expect("user.id")),
            counter: 0,
            synced,
        });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        })
    }

    /// `navigator.credentials.get(options)` from `origin` with credential `index`: its
    /// `PublicKeyCredential` JSON, signed over the next counter value.
    #[must_use]
    pub fn assert(&mut self, options: &Value, index: usize, origin: &str) -> Value {
        let public_key = &options["publicKey"];
        let rp_id = public_key["rpId"].as_str().expect("rpId");
        let credential = &mut self.credentials[index];
        if let Some(allowed) = public_key["allowCredentials"].as_array()
            && !allowed.is_empty()
        {
            assert!(
                allowed
                    .iter()
                    .any(|c| unb64(c["id"].as_str().unwrap()) == credential.id),
                "the credential is not among the allowed ones"
            );
        }
        credential.counter += 1;
        let counter = credential.counter;
        sign_assertion(credential, rp_id, public_key, origin, counter)
    }

    /// An assertion of credential `index` from `origin` with the counter at `counter` (not
    /// advanced): a cloned authenticator.
    #[must_use]
    pub fn assert_with_counter(
        &self,
        options: &Value,
        index: usize,
        origin: &str,
        counter: u32,
    ) -> Value {
        let public_key = &options["publicKey"];
        let rp_id = public_key["rpId"].as_str().expect("rpId");
        sign_assertion(&self.credentials[index], rp_id, public_key, origin, counter)
    }

    /// The WebAuthn id of credential `index`.
    #[must_use]
    pub fn credential_id(&self, index: usize) -> &[u8] {
        &self.credentials[index].id
    }

    /// How many credentials it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }
}

fn sign_assertion(
    credential: &Credential,
    rp_id: &str,
    public_key: &Value,
    origin: &str,
    counter: u32,
) -> Value {
    let flags = 0x01 | 0x04 | if credential.synced { 0x08 | 0x10 } else { 0 };
    let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
    auth_data.push(flags);
    auth_data.extend_from_slice(&counter.to_be_bytes());
    let client_data = client_data("webauthn.get", public_key, origin);
    let mut signed = auth_data.clone();
    signed.extend_from_slice(&Sha256::digest(&client_data));
    let signature: Signature = credential.key.sign(&signed);
    json!({
        "id": b64(&credential.id),
        "rawId": b64(&credential.id),
        "type": "public-key",
        "response": {
            "authenticatorData": b64(&auth_data),
            "clientDataJSON": b64(&client_data),
            "signature": b64(signature.to_der().as_bytes()),
            "userHandle": b64(&credential.user_handle),
        },
        "extensions": {},
    })
}

fn client_data(kind: &str, public_key: &Value, origin: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": kind,
        "challenge": public_key["challenge"].as_str().expect("challenge"),
        "origin": origin,
        "crossOrigin": false,
    }))
    .unwrap()
}

fn cbor(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}
