//! The user's list of sessions, ending one, and ending all.

use serde_json::Value;

use crate::flows::{self, PASSWORD};
use crate::{AppUnderTest, SessionCookie, check};

async fn list_sessions(app: &AppUnderTest, cookie: &SessionCookie) -> Vec<Value> {
    let body = app
        .client()
        .get_with("/auth/sessions", cookie)
        .await
        .json_with(200);
    body.as_array()
        .unwrap_or_else(|| panic!("GET /auth/sessions answers an array: {body}"))
        .clone()
}

/// `GET /auth/sessions` lists the user's live sessions, one per sign-in, each
/// `{id, created_at, last_seen_at, expires_at, user_agent, current}` with the `User-Agent` it was
/// signed in with, and exactly one `current: true`: the one asking.
pub async fn sessions_list_each_sign_in_and_mark_the_current_one(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    app.client()
        .post_with("/auth/sign-out", &account.cookie)
        .await
        .expect(204);
    let (first, _) = flows::sign_in_as(app, "ada@example.com", PASSWORD, "agent-one/1.0").await;
    let (second, cookie) =
        flows::sign_in_as(app, "ada@example.com", PASSWORD, "agent-two/2.0 (X11)").await;

    let sessions = list_sessions(app, &cookie).await;
    assert_eq!(sessions.len(), 2, "two live sessions: {sessions:?}");
    for session in &sessions {
        check::exact_keys(
            session,
            &[
                "id",
                "created_at",
                "last_seen_at",
                "expires_at",
                "user_agent",
                "current",
            ],
            "a listed session",
        );
        check::uuid_v7(&session["id"], "a listed session's id");
        let created = check::utc_time(&session["created_at"], "created_at");
        let seen = check::utc_time(&session["last_seen_at"], "last_seen_at");
        let expires = check::utc_time(&session["expires_at"], "expires_at");
        assert!(
            created <= seen && seen < expires,
            "times in order: {session}"
        );
        assert!(session["current"].is_boolean(), "{session}");
    }
    let by_id = |id: &Value| {
        sessions
            .iter()
            .find(|s| &s["id"] == id)
            .unwrap_or_else(|| panic!("session {id} is listed: {sessions:?}"))
    };
    let one = by_id(&first["session"]["id"]);
    let two = by_id(&second["session"]["id"]);
    assert_eq!(one["user_agent"], "agent-one/1.0", "{one}");
    assert_eq!(two["user_agent"], "agent-two/2.0 (X11)", "{two}");
    assert_eq!(one["current"], false, "{one}");
    assert_eq!(two["current"], true, "{two}");
}

/// `DELETE /auth/sessions/{id}` answers 204 and ends that session: its cookie then gets 401,
/// while the session that deleted it lives on.
pub async fn deleting_a_session_ends_it(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let (other, other_cookie) = flows::sign_in(app, "ada@example.com", PASSWORD).await;
    let id = other["session"]["id"].as_str().expect("a session id");
    app.client()
        .delete_with(&format!("/auth/sessions/{id}"), &account.cookie)
        .await
        .expect(204);
    flows::assert_session_dead(app, &other_cookie).await;
    flows::session(app, &account.cookie).await;
    let left = list_sessions(app, &account.cookie).await;
    assert_eq!(left.len(), 1, "one session left: {left:?}");
    assert_ne!(left[0]["id"], other["session"]["id"], "{left:?}");
}

/// Deleting another user's session, or one that does not exist, answers 404 `not_found` and
/// ends nothing.
pub async fn deleting_another_users_session_is_404(app: &AppUnderTest) {
    let ada = flows::sign_up(app, "ada@example.com").await;
    let grace = flows::sign_up(app, "grace@example.com").await;
    let graces = flows::session(app, &grace.cookie).await;
    let id = graces["session"]["id"].as_str().expect("a session id");
    app.client()
        .delete_with(&format!("/auth/sessions/{id}"), &ada.cookie)
        .await
        .problem(404, "not_found");
    flows::session(app, &grace.cookie).await;

    let unknown = uuid::Uuid::new_v4();
    app.client()
        .delete_with(&format!("/auth/sessions/{unknown}"), &ada.cookie)
        .await
        .problem(404, "not_found");
    flows::session(app, &ada.cookie).await;
}

/// `POST /auth/sign-out-everywhere` answers 204 and ends every session of the user, the one
/// asking included; another user's sessions live on.
pub async fn sign_out_everywhere_ends_every_session(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let (_, second) = flows::sign_in(app, "ada@example.com", PASSWORD).await;
    let grace = flows::sign_up(app, "grace@example.com").await;
    app.client()
        .post_with("/auth/sign-out-everywhere", &second)
        .await
        .expect(204);
    flows::assert_session_dead(app, &account.cookie).await;
    flows::assert_session_dead(app, &second).await;
    flows::session(app, &grace.cookie).await;
}
