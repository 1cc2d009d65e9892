//! Assertions on the shapes the contract fixes: UUID v7 ids, RFC 3339 UTC times, users and
//! sessions.

use std::collections::BTreeSet;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Asserts that `value` is a string UUID, version 7.
#[track_caller]
pub(crate) fn uuid_v7(value: &Value, what: &str) -> uuid::Uuid {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    let id = uuid::Uuid::parse_str(text)
        .unwrap_or_else(|e| panic!("{what} {text:?} is not a UUID: {e}"));
    assert_eq!(id.get_version_num(), 7, "{what} {text:?} is not a UUID v7");
    id
}

/// Asserts that `value` is an RFC 3339 time in UTC.
#[track_caller]
pub(crate) fn utc_time(value: &Value, what: &str) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    let time = OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{what} {text:?} is not an RFC 3339 time: {e}"));
    assert!(time.offset().is_utc(), "{what} {text:?} is not in UTC");
    time
}

/// The keys of a JSON object.
#[track_caller]
pub(crate) fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// Asserts that `value` is an object with exactly the keys `expected`.
#[track_caller]
pub(crate) fn exact_keys(value: &Value, expected: &[&str], what: &str) {
    let expected: BTreeSet<String> = expected.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(keys(value), expected, "the keys of {what}: {value}");
}

/// Asserts a user JSON `{id, email, name, email_verified, created_at}` for `email`.
#[track_caller]
pub(crate) fn user(user: &Value, email: &str) {
    exact_keys(
        user,
        &["id", "email", "name", "email_verified", "created_at"],
        "a user",
    );
    uuid_v7(&user["id"], "the user's id");
    assert!(
        user["email"]
            .as_str()
            .is_some_and(|e| e.eq_ignore_ascii_case(email)),
        "the user's email is {email}: {user}"
    );
    assert!(
        user["name"].is_string() || user["name"].is_null(),
        "the user's name is a string or null: {user}"
    );
    assert!(
        user["email_verified"].is_boolean(),
        "email_verified is a boolean: {user}"
    );
    let created = utc_time(&user["created_at"], "the user's created_at");
    assert!(
        created <= OffsetDateTime::now_utc() + time::Duration::minutes(1),
        "the user was created in the future: {user}"
    );
}

/// Asserts a session JSON `{id, expires_at, authenticated_at}` that expires in the future and
/// was authenticated in the past.
#[track_caller]
pub(crate) fn session(session: &Value) {
    exact_keys(
        session,
        &["id", "expires_at", "authenticated_at"],
        "a session",
    );
    uuid_v7(&session["id"], "the session's id");
    let expires = utc_time(&session["expires_at"], "the session's expires_at");
    let now = OffsetDateTime::now_utc();
    assert!(expires > now, "the session has already expired: {session}");
    let authenticated = utc_time(&session["authenticated_at"], "authenticated_at");
    assert!(
        authenticated <= now,
        "authenticated in the future: {session}"
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_user_of_the_contract_passes() {
        user(
            &json!({
                "id": "01937f4e-3b2a-7c3d-8e4f-0123456789ab",
                "email": "ada@example.com",
                "name": "Ada",
                "email_verified": false,
                "created_at": "2024-12-01T10:00:00Z",
            }),
            "Ada@example.com",
        );
    }

    #[test]
    #[should_panic(expected = "not a UUID v7")]
    fn a_v4_id_fails() {
        uuid_v7(&json!("0b5a3e4c-1d2f-4a6b-8c9d-0e1f2a3b4c5d"), "id");
    }

    #[test]
    #[should_panic(expected = "not in UTC")]
    fn a_time_with_an_offset_fails() {
        utc_time(&json!("2024-12-01T10:00:00+02:00"), "time");
    }

    #[test]
    #[should_panic(expected = "the keys of a session")]
    fn a_session_with_its_token_fails() {
        session(&json!({
            "id": "01937f4e-3b2a-7c3d-8e4f-0123456789ab",
            "expires_at": "2999-01-01T00:00:00Z",
            "token": "secret",
        }));
    }
}
