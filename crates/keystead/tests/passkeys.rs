//! Passkeys over the library's HTTP routes, with real WebAuthn ceremonies: a software
//! authenticator (`keystead_conformance::webauthn`) makes P-256 keys, answers registrations
//! with `none` attestation objects (CBOR, COSE keys) and signs assertions with ECDSA, as a
//! browser and a platform authenticator would. The store is a real SQLite store on a temporary file; the
//! clock is a `ManualClock`.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use keystead::mail::MemoryMailer;
use keystead::model::ChallengeKind;
use keystead::web::AppOrigin;
use keystead::{AuditKind, AuditQuery, Auth, AuthStore, Clock, ManualClock, TokenHash, UserId};
use keystead_conformance::webauthn::SoftAuthenticator;
use keystead_sqlite::SqliteStore;
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const APP: &str = "https://app.test";
const RP_ID: &str = "app.test";
const START: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const PASSWORD: &str = "correct horse battery staple";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

// ---- the app ------------------------------------------------------------------------------

struct App {
    auth: Auth,
    store: Arc<dyn AuthStore>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

/// A browser: its cookies (`name=value`).
#[derive(Clone, Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Applies a `Set-Cookie` (an empty value or `Max-Age=0` removes the cookie).
    fn set(&mut self, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        self.cookies.retain(|(n, _)| n != name);
        let removed = value.is_empty() || set_cookie.to_ascii_lowercase().contains("max-age=0");
        if !removed {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
    }

    fn has_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|(n, _)| n == name)
    }
}

struct Answer {
    status: StatusCode,
    body: Value,
    set_cookie: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AuthStore> =
        Arc::new(SqliteStore::open(dir.path().join("auth.db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(START));
    let auth = Auth::builder(store.clone(), AppOrigin::parse(APP).unwrap())
        .clock(clock.clone())
        .mailer(Arc::new(MemoryMailer::default()))
        .password_hashing(
            keystead::PasswordConfig::new()
                .argon2_params(1024, 1, 1)
                .unwrap(),
        )
        .build();
    App {
        auth,
        store,
        clock,
        _dir: dir,
    }
}

impl App {
    async fn call(
        &self,
        browser: &mut Browser,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ORIGIN, APP);
        if let Some(cookie) = browser.cookie_header() {
            request = request.header(header::COOKIE, cookie);
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&body).unwrap())
            }
            None => Bytes::new(),
        };
        let response = self
            .auth
            .handle(
                request.body(Full::new(body)).unwrap(),
                "203.0.113.7".parse::<IpAddr>().unwrap(),
            )
            .await;
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for set in &set_cookies {
            browser.set(set);
        }
        let set_cookie = (!set_cookies.is_empty()).then(|| set_cookies.join("\n"));
        let status = response.status();
        let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            set_cookie,
        }
    }

    /// Signs up `email`: a browser with its session.
    async fn sign_up(&self, email: &str) -> (Browser, UserId) {
        let mut browser = Browser::default();
        let answer = self
            .call(
                &mut browser,
                Method::POST,
                "/auth/sign-up",
                Some(json!({ "email": email, "password": PASSWORD, "name": "Ada" })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let id = answer.body["user"]["id"].as_str().unwrap().parse().unwrap();
        (browser, id)
    }

    /// Registers a passkey through the routes; answers the reply.
    async fn register(
        &self,
        browser: &mut Browser,
        authenticator: &mut SoftAuthenticator,
        name: Option<&str>,
    ) -> Answer {
        let options = self
            .call(
                browser,
                Method::POST,
                "/auth/passkeys/register/options",
                Some(json!({})),
            )
            .await;
        assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        let credential = authenticator.register(&options.body["options"], APP, true);
        let mut body = json!({ "ceremony": options.body["ceremony"], "credential": credential });
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        self.call(browser, Method::POST, "/auth/passkeys/register", Some(body))
            .await
    }

    async fn authenticate_options(&self, browser: &mut Browser) -> Value {
        let options = self
            .call(
                browser,
                Method::POST,
                "/auth/passkeys/authenticate/options",
                Some(json!({})),
            )
            .await;
        assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        options.body
    }

    async fn authenticate(
        &self,
        browser: &mut Browser,
        ceremony: &Value,
        credential: Value,
    ) -> Answer {
        self.call(
            browser,
            Method::POST,
            "/auth/passkeys/authenticate",
            Some(json!({ "ceremony": ceremony, "credential": credential })),
        )
        .await
    }

    async fn audit_kinds(&self, user_id: UserId) -> Vec<String> {
        let query = AuditQuery {
            user_id: Some(user_id),
            limit: 200,
            ..AuditQuery::default()
        };
        self.store
            .audit_events(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// The stored signature counter of the user's passkey `index`.
    async fn stored_counter(&self, user_id: UserId, index: usize) -> u64 {
        let passkeys = self.store.passkeys_for_user(user_id).await.unwrap();
        let credential: Value = serde_json::from_str(&passkeys[index].credential).unwrap();
        credential["cred"]["counter"].as_u64().expect("a counter")
    }
}

// ---- the tests ----------------------------------------------------------------------------

#[tokio::test]
async fn register_list_rename_and_remove() {
    let app = app().await;
    let (mut ada, ada_id) = app.sign_up("ada@example.com").await;
    let mut device = SoftAuthenticator::default();

    let first = app.register(&mut ada, &mut device, None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["name"], "Passkey");
    assert_eq!(first.body["backup_eligible"], true);
    assert_eq!(first.body["backup_state"], true);
    assert_eq!(first.body["last_used_at"], Value::Null);

    // The second registration asks for a discoverable credential and excludes the first.
    let options = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register/options",
            Some(json!({})),
        )
        .await;
    let public_key = &options.body["options"]["publicKey"];
    assert_eq!(public_key["rp"]["id"], RP_ID);
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["requireResidentKey"],
        true
    );
    assert_eq!(
        unb64(public_key["user"]["id"].as_str().unwrap()),
        ada_id.as_uuid().as_bytes()
    );
    let excluded = public_key["excludeCredentials"].as_array().expect("a list");
    assert_eq!(excluded.len(), 1);
    assert_eq!(
        unb64(excluded[0]["id"].as_str().unwrap()),
        device.credential_id(0)
    );
    let mut second_device = SoftAuthenticator::default();
    let credential = second_device.register(&options.body["options"], APP, false);
    let second = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register",
            Some(json!({
                "ceremony": options.body["ceremony"],
                "name": "YubiKey",
                "credential": credential,
            })),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(second.body["backup_eligible"], false);

    let list = app
        .call(&mut ada, Method::GET, "/auth/passkeys", None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    let mut keys: Vec<&str> = items[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "backup_eligible",
            "backup_state",
            "created_at",
            "id",
            "last_used_at",
            "name"
        ]
    );
    assert_eq!(items[0]["name"], "Passkey");
    assert_eq!(items[1]["name"], "YubiKey");
    let first_id = items[0]["id"].as_str().unwrap().to_owned();
    let second_id = items[1]["id"].as_str().unwrap().to_owned();

    // Rename, with the name's bounds.
    let path = format!("/auth/passkeys/{first_id}");
    let renamed = app
        .call(
            &mut ada,
            Method::PATCH,
            &path,
            Some(json!({ "name": "MacBook" })),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "MacBook");
    assert_eq!(renamed.body["id"], first_id.as_str());
    for bad in [String::new(), "x".repeat(101)] {
        let answer = app
            .call(&mut ada, Method::PATCH, &path, Some(json!({ "name": bad })))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.code(), "invalid_request");
    }
    // A name too long at registration is refused before the ceremony is used.
    let options = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register/options",
            Some(json!({})),
        )
        .await;
    let mut third_device = SoftAuthenticator::default();
    let credential = third_device.register(&options.body["options"], APP, false);
    let too_long = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register",
            Some(json!({
                "ceremony": options.body["ceremony"],
                "name": "y".repeat(101),
                "credential": credential,
            })),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_long.code(), "invalid_request");
    let third = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register",
            Some(json!({
                "ceremony": options.body["ceremony"],
                "name": "  Tablet  ",
                "credential": credential,
            })),
        )
        .await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.body);
    assert_eq!(third.body["name"], "Tablet");

    // Another user can neither rename nor remove Ada's passkeys.
    let (mut eve, _) = app.sign_up("eve@example.com").await;
    let answer = app.call(&mut eve, Method::DELETE, &path, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    let answer = app
        .call(
            &mut eve,
            Method::PATCH,
            &path,
            Some(json!({ "name": "mine" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Nor register into Ada's ceremony.
    let options = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register/options",
            Some(json!({})),
        )
        .await;
    let mut eve_device = SoftAuthenticator::default();
    let credential = eve_device.register(&options.body["options"], APP, false);
    let answer = app
        .call(
            &mut eve,
            Method::POST,
            "/auth/passkeys/register",
            Some(json!({ "ceremony": options.body["ceremony"], "credential": credential })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "invalid_code");

    let removed = app
        .call(
            &mut ada,
            Method::DELETE,
            &format!("/auth/passkeys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let list = app
        .call(&mut ada, Method::GET, "/auth/passkeys", None)
        .await;
    let items = list.body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "MacBook");
    assert_eq!(items[1]["name"], "Tablet");
    let again = app
        .call(
            &mut ada,
            Method::DELETE,
            &format!("/auth/passkeys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let kinds = app.audit_kinds(ada_id).await;
    for kind in [
        AuditKind::PasskeyAdded,
        AuditKind::PasskeyRenamed,
        AuditKind::PasskeyRemoved,
    ] {
        assert!(
            kinds.iter().any(|k| k == kind.as_str()),
            "{kind:?} in {kinds:?}"
        );
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == AuditKind::PasskeyAdded.as_str())
            .count(),
        3
    );
}

#[tokio::test]
async fn passwordless_sign_in_gives_a_working_session_and_keeps_the_counter() {
    let app = app().await;
    let (mut ada, ada_id) = app.sign_up("ada@example.com").await;
    let mut device = SoftAuthenticator::default();
    assert_eq!(
        app.register(&mut ada, &mut device, Some("Phone"))
            .await
            .status,
        StatusCode::CREATED
    );

    for round in 1..=2u64 {
        // A new browser: no session, no email.
        let mut browser = Browser::default();
        let options = app.authenticate_options(&mut browser).await;
        let public_key = &options["options"]["publicKey"];
        assert_eq!(public_key["rpId"], RP_ID);
        assert!(
            public_key["allowCredentials"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "discoverable: {public_key}"
        );
        let credential = device.assert(&options["options"], 0, APP);
        let signed_in = app
            .authenticate(&mut browser, &options["ceremony"], credential)
            .await;
        assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
        assert_eq!(signed_in.body["user"]["id"], ada_id.to_string());
        assert_eq!(
            signed_in
                .body
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["session", "user"]
        );
        assert!(signed_in.set_cookie.is_some());
        let session = app
            .call(&mut browser, Method::GET, "/auth/session", None)
            .await;
        assert_eq!(session.status, StatusCode::OK, "{}", session.body);
        assert_eq!(session.body["user"]["id"], ada_id.to_string());
        assert_eq!(app.stored_counter(ada_id, 0).await, round);
        app.clock.advance(Duration::seconds(30));
    }
    let list = app
        .call(&mut ada, Method::GET, "/auth/passkeys", None)
        .await;
    assert!(list.body[0]["last_used_at"].is_string(), "{}", list.body);

    // A counter that went backwards (a cloned authenticator) is refused.
    let mut browser = Browser::default();
    let options = app.authenticate_options(&mut browser).await;
    let cloned = device.assert_with_counter(&options["options"], 0, APP, 1);
    let refused = app
        .authenticate(&mut browser, &options["ceremony"], cloned)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.code(), "invalid_code");
    assert!(refused.set_cookie.is_none());
    assert_eq!(app.stored_counter(ada_id, 0).await, 2);

    let kinds = app.audit_kinds(ada_id).await;
    assert!(
        kinds.iter().any(|k| k == AuditKind::MfaFailed.as_str()),
        "{kinds:?}"
    );
    let sign_ins = app
        .store
        .audit_events(&AuditQuery {
            user_id: Some(ada_id),
            kind: Some(AuditKind::SignInSucceeded.as_str().to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        sign_ins
            .iter()
            .filter(|e| e.data["method"] == "passkey")
            .count(),
        2
    );
}

#[tokio::test]
async fn wrong_answers_are_refused() {
    let app = app().await;
    let (mut ada, ada_id) = app.sign_up("ada@example.com").await;
    let mut device = SoftAuthenticator::default();
    assert_eq!(
        app.register(&mut ada, &mut device, None).await.status,
        StatusCode::CREATED
    );
    let refused = |answer: &Answer| {
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert_eq!(answer.code(), "invalid_code");
        assert!(answer.set_cookie.is_none());
    };

    // A tampered signature.
    let mut browser = Browser::default();
    let options = app.authenticate_options(&mut browser).await;
    let mut credential = device.assert(&options["options"], 0, APP);
    let mut signature = unb64(credential["response"]["signature"].as_str().unwrap());
    let last = signature.len() - 1;
    signature[last] ^= 0x01;
    credential["response"]["signature"] = json!(b64(&signature));
    refused(
        &app.authenticate(&mut browser, &options["ceremony"], credential)
            .await,
    );

    // Another origin (a phishing site relaying the challenge).
    let options = app.authenticate_options(&mut browser).await;
    let credential = device.assert(&options["options"], 0, "https://app.test.evil.example");
    refused(
        &app.authenticate(&mut browser, &options["ceremony"], credential)
            .await,
    );

    // A user handle that is not the passkey's user.
    let options = app.authenticate_options(&mut browser).await;
    let mut credential = device.assert(&options["options"], 0, APP);
    credential["response"]["userHandle"] = json!(b64(UserId::new().as_uuid().as_bytes()));
    refused(
        &app.authenticate(&mut browser, &options["ceremony"], credential)
            .await,
    );

    // A replayed ceremony: the first answer signs in, the same again is refused.
    let options = app.authenticate_options(&mut browser).await;
    let credential = device.assert(&options["options"], 0, APP);
    let first = app
        .authenticate(
            &mut Browser::default(),
            &options["ceremony"],
            credential.clone(),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    refused(
        &app.authenticate(&mut browser, &options["ceremony"], credential)
            .await,
    );
    let credential = device.assert(&options["options"], 0, APP);
    refused(
        &app.authenticate(&mut browser, &options["ceremony"], credential)
            .await,
    );

    // An expired ceremony (5 minutes).
    let options = app.authenticate_options(&mut browser).await;
    app.clock
        .advance(Duration::minutes(5) + Duration::seconds(1));
    let credential = device.assert(&options["options"], 0, APP);
    refused(
        &app.authenticate(&mut browser, &options["ceremony"], credential)
            .await,
    );

    // An unknown ceremony, and a registration ceremony used for an authentication.
    let options = app.authenticate_options(&mut browser).await;
    let credential = device.assert(&options["options"], 0, APP);
    refused(
        &app.authenticate(&mut browser, &json!("no-such-ceremony"), credential)
            .await,
    );
    assert!(
        app.store
            .challenge(
                ChallengeKind::PasskeyAuthentication,
                &TokenHash::of(options["ceremony"].as_str().unwrap()),
                app.clock.now(),
            )
            .await
            .unwrap()
            .is_some(),
        "an unknown ceremony uses no other"
    );

    // A registration answered from another origin, or replayed.
    app.clock.advance(Duration::seconds(1));
    let (mut bob, _) = app.sign_up("bob@example.com").await;
    let options = app
        .call(
            &mut bob,
            Method::POST,
            "/auth/passkeys/register/options",
            Some(json!({})),
        )
        .await;
    let mut bob_device = SoftAuthenticator::default();
    let credential = bob_device.register(&options.body["options"], "https://evil.example", false);
    refused(
        &app.call(
            &mut bob,
            Method::POST,
            "/auth/passkeys/register",
            Some(json!({ "ceremony": options.body["ceremony"], "credential": credential })),
        )
        .await,
    );
    let credential = bob_device.register(&options.body["options"], APP, false);
    refused(
        &app.call(
            &mut bob,
            Method::POST,
            "/auth/passkeys/register",
            Some(json!({ "ceremony": options.body["ceremony"], "credential": credential })),
        )
        .await,
    );

    // A malformed credential is a malformed body.
    let options = app.authenticate_options(&mut browser).await;
    let answer = app
        .authenticate(&mut browser, &options["ceremony"], json!({ "id": 7 }))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "invalid_request");

    let failures = app
        .store
        .audit_events(&AuditQuery {
            user_id: Some(ada_id),
            kind: Some(AuditKind::MfaFailed.as_str().to_owned()),
            limit: 50,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(failures.len() >= 3, "{failures:?}");
}

#[tokio::test]
async fn re_authentication_and_step_up() {
    let app = app().await;
    let (mut ada, ada_id) = app.sign_up("ada@example.com").await;
    let mut device = SoftAuthenticator::default();
    let added = app.register(&mut ada, &mut device, None).await;
    assert_eq!(added.status, StatusCode::CREATED);
    let passkey_path = format!("/auth/passkeys/{}", added.body["id"].as_str().unwrap());

    // Eleven minutes after sign-in: registering and removing need a fresh proof.
    app.clock.advance(Duration::minutes(11));
    let answer = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register/options",
            Some(json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "reauthentication_required");
    let answer = app
        .call(&mut ada, Method::DELETE, &passkey_path, None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "reauthentication_required");
    // Listing and renaming do not.
    let answer = app
        .call(
            &mut ada,
            Method::PATCH,
            &passkey_path,
            Some(json!({ "name": "Laptop" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);

    // With a session, the options name the user's passkeys; the answer re-authenticates.
    let cookies_before = ada.cookies.clone();
    let options = app.authenticate_options(&mut ada).await;
    let allowed = options["options"]["publicKey"]["allowCredentials"]
        .as_array()
        .expect("the user's credentials");
    assert_eq!(allowed.len(), 1);
    assert_eq!(
        unb64(allowed[0]["id"].as_str().unwrap()),
        device.credential_id(0)
    );
    let credential = device.assert(&options["options"], 0, APP);
    let answer = app
        .authenticate(&mut ada, &options["ceremony"], credential)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let at = answer.body["authenticated_at"].as_str().expect("a time");
    assert_eq!(
        OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap(),
        app.clock.now()
    );
    assert_eq!(answer.body.as_object().unwrap().len(), 1);
    assert!(answer.set_cookie.is_none(), "the session goes on");
    assert_eq!(ada.cookies, cookies_before);
    assert!(
        app.audit_kinds(ada_id)
            .await
            .iter()
            .any(|k| k == AuditKind::Reauthenticated.as_str())
    );

    // Now both work.
    let answer = app
        .call(
            &mut ada,
            Method::POST,
            "/auth/passkeys/register/options",
            Some(json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = app
        .call(&mut ada, Method::DELETE, &passkey_path, None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_disabled_user_gets_no_session() {
    let app = app().await;
    let (mut ada, ada_id) = app.sign_up("ada@example.com").await;
    let mut device = SoftAuthenticator::default();
    assert_eq!(
        app.register(&mut ada, &mut device, None).await.status,
        StatusCode::CREATED
    );
    app.store
        .set_user_disabled(ada_id, Some(app.clock.now()))
        .await
        .unwrap();
    let mut browser = Browser::default();
    let options = app.authenticate_options(&mut browser).await;
    let credential = device.assert(&options["options"], 0, APP);
    let answer = app
        .authenticate(&mut browser, &options["ceremony"], credential)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.code(), "account_disabled");
    assert!(answer.set_cookie.is_none());
    assert!(browser.cookies.is_empty());
}

#[tokio::test]
async fn a_passkey_completes_a_pending_sign_in() {
    let app = app().await;
    let (mut ada, ada_id) = app.sign_up("ada@example.com").await;
    let mut device = SoftAuthenticator::default();
    assert_eq!(
        app.register(&mut ada, &mut device, None).await.status,
        StatusCode::CREATED
    );
    let (mut eve, _) = app.sign_up("eve@example.com").await;
    let mut eve_device = SoftAuthenticator::default();
    assert_eq!(
        app.register(&mut eve, &mut eve_device, None).await.status,
        StatusCode::CREATED
    );

    // Password first: the passkey is Ada's second factor now.
    let mut browser = Browser::default();
    let pending = app
        .call(
            &mut browser,
            Method::POST,
            "/auth/sign-in",
            Some(json!({ "email": "ada@example.com", "password": PASSWORD })),
        )
        .await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(pending.body["mfa_required"], true);
    assert_eq!(pending.body["methods"], json!(["passkey"]));
    assert_eq!(
        browser.cookies.len(),
        1,
        "only the pending sign-in's cookie"
    );
    let pending_cookie = browser.cookies[0].0.clone();

    // The options name Ada's passkeys only.
    let options = app.authenticate_options(&mut browser).await;
    let allowed = options["options"]["publicKey"]["allowCredentials"]
        .as_array()
        .expect("the pending user's credentials");
    assert_eq!(allowed.len(), 1);
    assert_eq!(
        unb64(allowed[0]["id"].as_str().unwrap()),
        device.credential_id(0)
    );

    // Eve's passkey, from a discoverable ceremony, does not complete Ada's sign-in.
    let discoverable = app.authenticate_options(&mut Browser::default()).await;
    let credential = eve_device.assert(&discoverable["options"], 0, APP);
    let refused = app
        .authenticate(&mut browser, &discoverable["ceremony"], credential)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.code(), "invalid_code");
    assert!(browser.has_cookie(&pending_cookie));

    let credential = device.assert(&options["options"], 0, APP);
    let signed_in = app
        .authenticate(&mut browser, &options["ceremony"], credential)
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["user"]["id"], ada_id.to_string());
    assert!(
        !browser.has_cookie(&pending_cookie),
        "the pending cookie is cleared"
    );
    let session = app
        .call(&mut browser, Method::GET, "/auth/session", None)
        .await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    assert_eq!(session.body["user"]["id"], ada_id.to_string());
    let sign_ins = app
        .store
        .audit_events(&AuditQuery {
            user_id: Some(ada_id),
            kind: Some(AuditKind::SignInSucceeded.as_str().to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(
        sign_ins
            .iter()
            .any(|e| e.data["method"] == "password" && e.data["second_factor"] == "passkey"),
        "{sign_ins:?}"
    );
}

#[tokio::test]
async fn ceremonies_begun_per_address_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AuthStore> =
        Arc::new(SqliteStore::open(dir.path().join("auth.db")).await.unwrap());
    let mut limits = keystead::RateLimitConfig::default();
    limits.passkey_options_per_address = keystead::RateLimit::new(2, Duration::minutes(15));
    let app = App {
        auth: Auth::builder(store.clone(), AppOrigin::parse(APP).unwrap())
            .clock(Arc::new(ManualClock::new(START)))
            .rate_limits(limits)
            .build(),
        store,
        clock: Arc::new(ManualClock::new(START)),
        _dir: dir,
    };
    let mut browser = Browser::default();
    for _ in 0..2 {
        app.authenticate_options(&mut browser).await;
    }
    let refused = app
        .call(
            &mut browser,
            Method::POST,
            "/auth/passkeys/authenticate/options",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "rate_limited");
}
