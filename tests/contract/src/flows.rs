//! Steps that many cases share: signing up and in, verifying an email, creating an
//! organization. Each asserts its own success, so a case reads as the behaviour it checks.

use serde_json::{Value, json};

use crate::{AppUnderTest, SessionCookie};

/// A strong password that is on no list.
pub const PASSWORD: &str = "correct horse battery staple";

/// Another strong password, for changes and resets.
pub const NEW_PASSWORD: &str = "a brand new passphrase, 2 times";

/// A signed-up user and the session cookie that sign-up set.
#[derive(Debug, Clone)]
pub struct Account {
    /// The email signed up with.
    pub email: String,
    /// The password signed up with.
    pub password: String,
    /// The user JSON of the sign-up answer.
    pub user: Value,
    /// The session cookie of the sign-up answer.
    pub cookie: SessionCookie,
}

impl Account {
    /// The user's id.
    ///
    /// # Panics
    /// When the user JSON has no string `id`.
    #[must_use]
    pub fn id(&self) -> &str {
        self.user["id"].as_str().expect("a user has a string id")
    }
}

/// Signs up `email` with [`PASSWORD`] (as a browser on the app's origin); asserts 201.
pub async fn sign_up(app: &AppUnderTest, email: &str) -> Account {
    sign_up_with(app, email, PASSWORD).await
}

/// Signs up `email` with `password`; asserts 201 with a user and a session cookie.
pub async fn sign_up_with(app: &AppUnderTest, email: &str, password: &str) -> Account {
    let reply = app
        .client()
        .post_json(
            "/auth/sign-up",
            &json!({"email": email, "password": password, "name": "Ada Lovelace"}),
        )
        .await;
    let body = reply.json_with(201);
    Account {
        email: email.to_owned(),
        password: password.to_owned(),
        user: body["user"].clone(),
        cookie: reply.session_cookie(),
    }
}

/// Signs in; asserts 200 and returns the body and the new session cookie.
pub async fn sign_in(app: &AppUnderTest, email: &str, password: &str) -> (Value, SessionCookie) {
    sign_in_as(app, email, password, crate::client::DEFAULT_USER_AGENT).await
}

/// Signs in with `User-Agent: user_agent`; asserts 200 and returns the body and the cookie.
pub async fn sign_in_as(
    app: &AppUnderTest,
    email: &str,
    password: &str,
    user_agent: &str,
) -> (Value, SessionCookie) {
    let reply = app
        .client()
        .post("/auth/sign-in")
        .app_origin()
        .user_agent(user_agent)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await;
    let body = reply.json_with(200);
    (body, reply.session_cookie())
}

/// Tries to sign in and returns the answer, whatever it is.
pub async fn try_sign_in(app: &AppUnderTest, email: &str, password: &str) -> crate::Reply {
    app.client()
        .post_json(
            "/auth/sign-in",
            &json!({"email": email, "password": password}),
        )
        .await
}

/// `GET /auth/session` with `cookie`; asserts 200 and returns the body.
pub async fn session(app: &AppUnderTest, cookie: &SessionCookie) -> Value {
    app.client()
        .get_with("/auth/session", cookie)
        .await
        .json_with(200)
}

/// Asserts that `cookie` no longer opens a session: `GET /auth/session` gives 401.
pub async fn assert_session_dead(app: &AppUnderTest, cookie: &SessionCookie) {
    app.client()
        .get_with("/auth/session", cookie)
        .await
        .dead_session();
}

/// The verification mail sent to `email`.
pub async fn verification_mail(app: &AppUnderTest, email: &str) -> crate::Mail {
    app.latest_mail_matching(email, |mail| {
        mail.action_url
            .as_deref()
            .is_some_and(|url| url.contains("/auth/verify-email?"))
    })
    .await
}

/// The password-reset mail sent to `email`.
pub async fn reset_mail(app: &AppUnderTest, email: &str) -> crate::Mail {
    app.latest_mail_matching(email, |mail| {
        mail.action_url
            .as_deref()
            .is_some_and(|url| url.contains("/reset-password?"))
    })
    .await
}

/// Verifies `account`'s email with the mailed token, as the link opened in another browser
/// would (without the account's session, which therefore keeps its id); asserts 200.
pub async fn verify_email(app: &AppUnderTest, account: &Account) {
    let token = verification_mail(app, &account.email).await.token();
    let body = app
        .client()
        .post_json("/auth/verify-email", &json!({"token": token}))
        .await
        .json_with(200);
    assert_eq!(body["user"]["email_verified"], true, "{body}");
}

/// Creates an organization named `name` with `cookie`'s user as owner; asserts 201 and returns
/// the organization JSON.
pub async fn create_org(app: &AppUnderTest, cookie: &SessionCookie, name: &str) -> Value {
    let org = app
        .client()
        .post_json_with("/orgs", &json!({"name": name}), cookie)
        .await
        .json_with(201);
    assert_eq!(
        org["role"], "owner",
        "the creator owns the organization: {org}"
    );
    org
}

/// Asserts that `reply` rotated the session of `old`: it sets a new session cookie, `old` is
/// refused (401) from now on and the new one works, under another session id. Returns the new
/// cookie.
#[track_caller]
pub fn rotated_cookie(reply: &crate::Reply, old: &SessionCookie) -> SessionCookie {
    let new = reply.session_cookie();
    assert_eq!(new.name, old.name, "{reply}");
    assert_ne!(new.value, old.value, "a new session token: {reply}");
    new
}

/// Asserts that `new` replaced `old` (see [`rotated_cookie`]): `old` answers 401, `new` works
/// under another session id. Returns the session JSON of `new`.
pub async fn assert_replaced(
    app: &AppUnderTest,
    old: &SessionCookie,
    old_session_id: &Value,
    new: &SessionCookie,
) -> Value {
    assert_session_dead(app, old).await;
    let session = session(app, new).await;
    assert_ne!(
        &session["session"]["id"], old_session_id,
        "a new session id: {session}"
    );
    session
}
