//! `/auth/passkeys…`: registering, listing, naming and removing passkeys, and signing in or
//! re-authenticating with one.

use http::StatusCode;
use serde_json::json;

use super::schema::{
    PasskeyAuthenticateBody, PasskeyAuthenticatedReply, PasskeyOptionsReply, PasskeyRegisterBody,
    PasskeyRenameBody, PasskeyView, ReauthenticatedReply, SignInReply,
};
use super::{Call, Reply};
use crate::id::PasskeyId;
use crate::principal::Principal;
use crate::{AuditEvent, AuditKind, AuthError, ErrorCode};

/// The step-up check of the passkey routes that add or remove one: the session's
/// authentication must be recent ([`Auth::require_recent_auth`](crate::Auth::require_recent_auth);
/// `reauthentication_required` otherwise).
fn require_step_up(call: &Call<'_>, principal: &Principal) -> Result<(), AuthError> {
    call.auth.require_recent_auth(principal)
}

/// A request body's WebAuthn answer as the type the library reads; `invalid_request` when it
/// does not have that shape.
fn credential<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, AuthError> {
    serde_json::from_value(value).map_err(|_| {
        AuthError::new(ErrorCode::InvalidRequest)
            .with_detail("The credential is not a WebAuthn answer.")
    })
}

fn options_reply<T: serde::Serialize>(
    started: crate::passkeys::CeremonyStart<T>,
) -> Result<Reply, AuthError> {
    let options = serde_json::to_value(&started.options).map_err(|err| {
        tracing::error!(error = %err, "could not serialize WebAuthn options");
        AuthError::new(ErrorCode::Internal)
    })?;
    Ok(Reply::json(
        StatusCode::OK,
        &PasskeyOptionsReply {
            ceremony: started.ceremony,
            options,
        },
    ))
}

/// `POST /auth/passkeys/register/options`.
pub(super) async fn register_options(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    require_step_up(call, principal)?;
    let _: super::schema::EmptyBody = call.body()?;
    let started = call
        .auth
        .passkeys()
        .start_registration(&principal.user)
        .await?;
    options_reply(started)
}

/// `POST /auth/passkeys/register`.
pub(super) async fn register(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let body: PasskeyRegisterBody = call.body()?;
    let answer = credential(body.credential)?;
    let passkey = call
        .auth
        .passkeys()
        .finish_registration(
            &principal.user,
            &body.ceremony,
            body.name.as_deref(),
            &answer,
            &call.client,
        )
        .await?;
    Ok(Reply::json(
        StatusCode::CREATED,
        &PasskeyView::from(&passkey),
    ))
}

/// `GET /auth/passkeys`.
pub(super) async fn list(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let passkeys = call.auth.passkeys().list(principal.user.id).await?;
    let views: Vec<PasskeyView> = passkeys.iter().map(PasskeyView::from).collect();
    Ok(Reply::json(StatusCode::OK, &views))
}

fn passkey_id(call: &Call<'_>) -> Result<PasskeyId, AuthError> {
    call.id_param("passkey_id")
        .ok_or(AuthError::new(ErrorCode::NotFound))
}

/// `PATCH /auth/passkeys/{passkey_id}`.
pub(super) async fn rename(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let id = passkey_id(call)?;
    let body: PasskeyRenameBody = call.body()?;
    let passkey = call
        .auth
        .passkeys()
        .rename(principal.user.id, id, &body.name, &call.client)
        .await?;
    Ok(Reply::json(StatusCode::OK, &PasskeyView::from(&passkey)))
}

/// `DELETE /auth/passkeys/{passkey_id}`.
pub(super) async fn remove(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    require_step_up(call, principal)?;
    let id = passkey_id(call)?;
    call.auth
        .passkeys()
        .remove(&principal.user, id, &call.client)
        .await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// The request's session and its user, when it has one.
fn session_user(call: &Call<'_>) -> Option<(crate::SessionId, crate::UserId)> {
    let principal = call.authn.principal.as_ref()?;
    Some((principal.session_id()?, principal.user.id))
}

/// The user of the request's pending sign-in (its cookie), when it has a live one.
async fn pending_user(call: &Call<'_>) -> Result<Option<crate::User>, AuthError> {
    if call.mfa_cookie.is_none() {
        return Ok(None);
    }
    match call
        .auth
        .mfa()
        .pending_user(call.mfa_cookie.as_deref())
        .await
    {
        Ok(user) => Ok(Some(user)),
        // A stale cookie (expired or completed sign-in) is no pending sign-in.
        Err(err) if err.code == ErrorCode::Unauthenticated => Ok(None),
        Err(err) => Err(err),
    }
}

/// `POST /auth/passkeys/authenticate/options`: with a pending sign-in, its user's passkeys
/// (the second factor); with a session, the session user's (re-authentication); else
/// discoverable (passwordless sign-in).
pub(super) async fn authenticate_options(call: &Call<'_>) -> Result<Reply, AuthError> {
    let _: super::schema::EmptyBody = call.body()?;
    // Public, and each call stores a ceremony: bounded per client address.
    call.auth
        .accounts()
        .rate_limiter()
        .hit_passkey_options(call.client.ip)
        .await?;
    let user_id = match pending_user(call).await? {
        Some(user) => Some(user.id),
        None => session_user(call).map(|(_, user_id)| user_id),
    };
    let started = call.auth.passkeys().start_authentication(user_id).await?;
    options_reply(started)
}

/// `POST /auth/passkeys/authenticate`: a pending sign-in completes with its user's passkey;
/// else the session's user re-authenticates; else the passkey's user signs in (any session
/// the request came with ends).
pub(super) async fn authenticate(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: PasskeyAuthenticateBody = call.body()?;
    let answer = credential(body.credential)?;
    let verified = call
        .auth
        .passkeys()
        .finish_authentication(&body.ceremony, &answer, &call.client)
        .await?;
    let user = verified.user;
    let now = || call.auth.clock().now();
    if let Some(pending) = pending_user(call).await? {
        // The second step of a sign-in: the passkey must be the pending user's.
        if pending.id != user.id {
            return Err(AuthError::new(ErrorCode::InvalidCode));
        }
        let completed = call
            .auth
            .mfa()
            .complete_sign_in(call.mfa_cookie.as_deref(), "passkey", &call.client)
            .await?;
        super::account::end_previous_session(call).await;
        return Ok(super::mfa::finished_sign_in(call, &completed));
    }
    if let Some((session_id, session_user)) = session_user(call)
        && session_user == user.id
    {
        let at = call.auth.sessions().reauthenticated(session_id).await?;
        crate::audit::record(
            &**call.auth.store(),
            &AuditEvent {
                actor_id: Some(user.id),
                user_id: Some(user.id),
                data: json!({
                    "method": "passkey",
                    "session_id": session_id.to_string(),
                    "passkey_id": verified.passkey.id.to_string(),
                }),
                ..call.client.audit_event(AuditKind::Reauthenticated, now())
            },
        )
        .await;
        return Ok(Reply::json(
            StatusCode::OK,
            &PasskeyAuthenticatedReply::Reauthenticated(ReauthenticatedReply::new(at)),
        ));
    }
    let created = call
        .auth
        .sessions()
        .create(user.id, call.client.session_meta())
        .await?;
    super::account::end_previous_session(call).await;
    crate::audit::record(
        &**call.auth.store(),
        &AuditEvent {
            actor_id: Some(user.id),
            user_id: Some(user.id),
            data: json!({
                "method": "passkey",
                "session_id": created.session.id.to_string(),
                "passkey_id": verified.passkey.id.to_string(),
            }),
            ..call.client.audit_event(AuditKind::SignInSucceeded, now())
        },
    )
    .await;
    call.auth.notify_new_device(&user, &created.session).await;
    let max_age = created.session.expires_at - now();
    let cookie = call.auth.cookies().session_cookie(&created.token, max_age);
    Ok(Reply::json(
        StatusCode::OK,
        &PasskeyAuthenticatedReply::SignedIn(SignInReply::new(&user, &created.session)),
    )
    .cookie(cookie))
}
