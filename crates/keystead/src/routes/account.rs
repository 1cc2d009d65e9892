//! `/auth/…`: accounts and sessions.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::response::{rfc3339, session_json, user_json};
use super::{Call, Reply};
use crate::session::CreatedSession;
use crate::{AuthError, ErrorCode, SecretString, SessionId};

#[derive(Deserialize)]
pub(super) struct SignUpBody {
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignInBody {
    email: String,
    password: String,
}

#[derive(Deserialize)]
pub(super) struct TokenBody {
    token: String,
}

#[derive(Deserialize)]
pub(super) struct EmailBody {
    email: String,
}

#[derive(Deserialize)]
pub(super) struct ResetConfirmBody {
    token: String,
    password: String,
}

#[derive(Deserialize)]
pub(super) struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

/// The `Set-Cookie` that carries a new session's token.
fn session_cookie(call: &Call<'_>, created: &CreatedSession) -> String {
    let max_age = created.session.expires_at - call.auth.clock().now();
    call.auth.cookies().session_cookie(&created.token, max_age)
}

fn removal_cookie(call: &Call<'_>) -> String {
    call.auth.cookies().removal_cookie()
}

/// Replaces the request's session `id` with a new one after a privilege change (new id and
/// token; same user, active organization and absolute expiry) and returns the `Set-Cookie`
/// that carries it: the token the browser had before the change is refused from now on, so
/// one seen (or planted) before the change is worthless after it.
pub(super) async fn rotate_session(call: &Call<'_>, id: SessionId) -> Result<String, AuthError> {
    let created = call.auth.sessions().rotate(id).await?;
    Ok(session_cookie(call, &created))
}

/// The request's session, if it is a session of `user_id`'s.
fn own_session(call: &Call<'_>, user_id: crate::UserId) -> Option<SessionId> {
    call.authn
        .principal
        .as_ref()
        .filter(|p| p.user.id == user_id)
        .and_then(|p| p.session_id())
}

/// A session the request came with is replaced by the new one (no two live sessions for one
/// browser, and no fixation of a session planted before sign-in).
pub(super) async fn end_previous_session(call: &Call<'_>) {
    if let Some(id) = call.authn.principal.as_ref().and_then(|p| p.session_id())
        && let Err(err) = call.auth.sessions().end(id).await
    {
        tracing::warn!(error = %err.code, "could not end the previous session");
    }
}

pub(super) async fn sign_up(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: SignUpBody = call.json()?;
    let password = SecretString::from(body.password);
    let (user, created) = call
        .auth
        .accounts()
        .sign_up(&body.email, &password, body.name, &call.client)
        .await?;
    end_previous_session(call).await;
    Ok(
        Reply::json(StatusCode::CREATED, json!({ "user": user_json(&user) }))
            .cookie(session_cookie(call, &created)),
    )
}

pub(super) async fn sign_in(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: SignInBody = call.json()?;
    let password = SecretString::from(body.password);
    let (user, created) = call
        .auth
        .accounts()
        .sign_in(&body.email, &password, &call.client)
        .await?;
    end_previous_session(call).await;
    Ok(Reply::json(
        StatusCode::OK,
        json!({ "user": user_json(&user), "session": session_json(&created.session) }),
    )
    .cookie(session_cookie(call, &created)))
}

pub(super) async fn sign_out(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let id = principal.require_session()?;
    call.auth.accounts().sign_out(id, &call.client).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT).cookie(removal_cookie(call)))
}

pub(super) async fn session(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let (org, role) = match &principal.org {
        Some((org_id, role)) => {
            let org = call.auth.store().organization(*org_id).await?;
            (
                org.map(|o| json!({ "id": o.id.to_string(), "name": o.name, "slug": o.slug })),
                Some(role.as_str().to_owned()),
            )
        }
        None => (None, None),
    };
    let session = match &principal.credential {
        crate::principal::Credential::Session { id, expires_at } => {
            json!({ "id": id.to_string(), "expires_at": rfc3339(*expires_at) })
        }
        crate::principal::Credential::ApiToken { .. } => Value::Null,
    };
    let permissions: Vec<&str> = principal.permissions().iter().map(|p| p.as_str()).collect();
    Ok(Reply::json(
        StatusCode::OK,
        json!({
            "user": user_json(&principal.user),
            "session": session,
            "org": org,
            "role": role,
            "permissions": permissions,
        }),
    ))
}

pub(super) async fn sessions(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let current = principal.require_session()?;
    let list = call.auth.sessions().list(principal.user.id).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "id": s.id.to_string(),
                "created_at": rfc3339(s.created_at),
                "last_seen_at": rfc3339(s.last_seen_at),
                "expires_at": rfc3339(s.expires_at),
                "user_agent": s.user_agent,
                "current": s.id == current,
            })
        })
        .collect();
    Ok(Reply::json(StatusCode::OK, Value::Array(items)))
}

pub(super) async fn end_session(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let current = principal.require_session()?;
    let not_found = || AuthError::new(ErrorCode::NotFound);
    let id: SessionId = call
        .id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .ok_or_else(not_found)?;
    // Another user's session is answered like one that does not exist.
    let session = call
        .auth
        .store()
        .session_by_id(id)
        .await?
        .filter(|s| s.user_id == principal.user.id)
        .ok_or_else(not_found)?;
    call.auth
        .accounts()
        .sign_out(session.id, &call.client)
        .await?;
    let reply = Reply::empty(StatusCode::NO_CONTENT);
    Ok(if session.id == current {
        reply.cookie(removal_cookie(call))
    } else {
        reply
    })
}

pub(super) async fn sign_out_everywhere(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    call.auth
        .accounts()
        .sign_out_everywhere(principal.user.id, &call.client)
        .await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT).cookie(removal_cookie(call)))
}

pub(super) async fn verify_email(call: &Call<'_>) -> Result<Reply, AuthError> {
    if call.method == Method::GET {
        // The clicked link: verify, then go to the app.
        let token = call
            .query_param("token")
            .ok_or(AuthError::new(ErrorCode::InvalidLink))?;
        let user = call
            .auth
            .accounts()
            .verify_email(&token, &call.client)
            .await?;
        let reply = Reply {
            status: StatusCode::SEE_OTHER,
            location: Some("/dashboard".to_owned()),
            ..Reply::default()
        };
        return rotated_if_own_session(call, user.id, reply).await;
    }
    let body: TokenBody = call.json()?;
    let user = call
        .auth
        .accounts()
        .verify_email(&body.token, &call.client)
        .await?;
    let reply = Reply::json(StatusCode::OK, json!({ "user": user_json(&user) }));
    rotated_if_own_session(call, user.id, reply).await
}

/// A verified email is a privilege change (routes that need a verified address open up):
/// when the request carries a session of the verified user, that session is rotated.
async fn rotated_if_own_session(
    call: &Call<'_>,
    user_id: crate::UserId,
    reply: Reply,
) -> Result<Reply, AuthError> {
    Ok(match own_session(call, user_id) {
        Some(id) => reply.cookie(rotate_session(call, id).await?),
        None => reply,
    })
}

pub(super) async fn send_verification(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    if principal.user.email_verified_at.is_none() {
        call.auth
            .accounts()
            .send_verification(&principal.user)
            .await?;
    }
    // Answered alike whether a mail went out or the mail limit held it back.
    Ok(Reply::empty(StatusCode::ACCEPTED))
}

pub(super) fn password_reset(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: EmailBody = call.json()?;
    // The lookup, the token and the mail run after the answer: its timing cannot tell whether
    // the account exists.
    let accounts = call.auth.accounts().clone();
    let client = call.client.clone();
    tokio::spawn(async move {
        accounts.request_password_reset(&body.email, &client).await;
    });
    Ok(Reply::empty(StatusCode::ACCEPTED))
}

pub(super) async fn password_reset_confirm(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: ResetConfirmBody = call.json()?;
    let password = SecretString::from(body.password);
    call.auth
        .accounts()
        .confirm_password_reset(&body.token, &password, &call.client)
        .await?;
    let reply = Reply::json(StatusCode::OK, json!({}));
    // Every session ended, this browser's too if it had one.
    Ok(if call.authn.principal.is_some() {
        reply.cookie(removal_cookie(call))
    } else {
        reply
    })
}

pub(super) async fn change_password(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let session_id = principal.require_session()?;
    let body: ChangePasswordBody = call.json()?;
    call.auth
        .accounts()
        .change_password(
            principal.user.id,
            session_id,
            &SecretString::from(body.current_password),
            &SecretString::from(body.new_password),
            &call.client,
        )
        .await?;
    // The other sessions ended; this one goes on under a new id.
    let cookie = rotate_session(call, session_id).await?;
    Ok(Reply::json(StatusCode::OK, json!({})).cookie(cookie))
}
