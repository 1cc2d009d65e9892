//! The password policy and changing a password.

use serde_json::json;

use crate::flows::{self, NEW_PASSWORD, PASSWORD};
use crate::{AppUnderTest, check};

/// Characters outside ASCII, none combining, each one character and more than one byte.
const UNICODE: &[char] = &[
    'ж', 'ё', 'λ', 'ß', '東', '京', 'ü', 'ø', 'ç', 'ñ', 'ğ', 'ħ', '🔑',
];

/// `n` characters, cycling through [`UNICODE`] and ASCII digits, so that no run repeats.
fn unicode_password(n: usize) -> String {
    (0..n)
        .map(|i| {
            if i % 3 == 2 {
                char::from(b'0' + u8::try_from(i % 10).expect("a digit"))
            } else {
                UNICODE[i % UNICODE.len()]
            }
        })
        .collect()
}

/// Sign-up refuses weak passwords with 422 `weak_password`: shorter than 8 characters, on the
/// list of common passwords (`password1234`), or longer than 256 characters; lengths count
/// characters, not bytes. A refused sign-up creates no account.
pub async fn sign_up_refuses_weak_passwords(app: &AppUnderTest) {
    let weak = [
        "seven77".to_owned(),
        "password1234".to_owned(),
        "x".repeat(257),
        unicode_password(7),
        unicode_password(257),
    ];
    for password in &weak {
        app.client()
            .post_json(
                "/auth/sign-up",
                &json!({"email": "ada@example.com", "password": password}),
            )
            .await
            .problem(422, "weak_password");
    }
    // Nothing was created: the address is still free.
    flows::sign_up(app, "ada@example.com").await;
}

/// Any Unicode is a fine password: 8 and 256 characters (counted as characters, many more
/// bytes) are accepted and sign in.
pub async fn sign_up_accepts_unicode_passwords(app: &AppUnderTest) {
    for (email, password) in [
        ("eight@example.com", unicode_password(8)),
        ("long@example.com", unicode_password(256)),
        ("phrase@example.com", "пароль-ключ-🔑-東京".to_owned()),
    ] {
        assert!(
            password.len() > password.chars().count(),
            "a multi-byte password"
        );
        let account = flows::sign_up_with(app, email, &password).await;
        let (body, _) = flows::sign_in(app, email, &password).await;
        assert_eq!(body["user"]["id"], account.user["id"], "{body}");
    }
}

/// `POST /auth/change-password` answers 200: the session that asked goes on (under a new id,
/// see `change_password_rotates_the_session_id`), every other session ends, and only the new
/// password signs in.
pub async fn change_password_keeps_this_session_and_ends_the_others(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let (_, other) = flows::sign_in(app, "ada@example.com", PASSWORD).await;
    let reply = app
        .client()
        .post_json_with(
            "/auth/change-password",
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
            &account.cookie,
        )
        .await
        .expect(200);
    let cookie = flows::rotated_cookie(&reply, &account.cookie);
    flows::assert_session_dead(app, &other).await;
    let session = flows::session(app, &cookie).await;
    check::session(&session["session"]);
    flows::sign_in(app, "ada@example.com", NEW_PASSWORD).await;
    flows::try_sign_in(app, "ada@example.com", PASSWORD)
        .await
        .problem(401, "invalid_credentials");
}

/// A wrong current password answers 401 `invalid_credentials` and changes nothing: every
/// session lives on and the old password still signs in.
pub async fn change_password_with_a_wrong_current_password_is_401(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let (_, other) = flows::sign_in(app, "ada@example.com", PASSWORD).await;
    app.client()
        .post_json_with(
            "/auth/change-password",
            &json!({"current_password": "not the password", "new_password": NEW_PASSWORD}),
            &account.cookie,
        )
        .await
        .problem(401, "invalid_credentials");
    flows::session(app, &account.cookie).await;
    flows::session(app, &other).await;
    flows::sign_in(app, "ada@example.com", PASSWORD).await;
    flows::try_sign_in(app, "ada@example.com", NEW_PASSWORD)
        .await
        .problem(401, "invalid_credentials");
}
