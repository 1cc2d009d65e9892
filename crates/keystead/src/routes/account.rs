//! `/auth/…`: accounts and sessions.

use http::StatusCode;

use super::schema::{
    ChangePasswordBody, CurrentSession, Done, EmailBody, MfaSummary, OrgView, ResetConfirmBody,
    SessionListItem, SessionView, SignInBody, SignInReply, SignUpBody, TokenBody, UserReply,
    UserView,
};
use super::{Call, Reply};
use crate::accounts::SignIn;
use crate::session::CreatedSession;
use crate::{AuthError, ErrorCode, SecretString, SessionId};

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

/// Sessions of `user_id` ended: every instance drops the user's cached sessions now (through
/// the change feed, and the change log within the staleness bound), rather than when their
/// cache entries expire.
async fn sessions_ended(call: &Call<'_>, user_id: crate::UserId) {
    call.auth
        .publish(crate::tokens::Change::UserChanged { user_id })
        .await;
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
    let body: SignUpBody = call.body()?;
    let password = SecretString::from(body.password);
    let (user, created) = call
        .auth
        .accounts()
        .sign_up(&body.email, &password, body.name, &call.client)
        .await?;
    end_previous_session(call).await;
    Ok(Reply::json(StatusCode::CREATED, &UserReply::new(&user))
        .cookie(session_cookie(call, &created)))
}

pub(super) async fn sign_in(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: SignInBody = call.body()?;
    let password = SecretString::from(body.password);
    let signed_in = call
        .auth
        .accounts()
        .sign_in(&body.email, &password, &call.client)
        .await?;
    match signed_in {
        SignIn::Session {
            user,
            session: created,
        } => {
            end_previous_session(call).await;
            Ok(
                Reply::json(StatusCode::OK, &SignInReply::new(&user, &created.session))
                    .cookie(session_cookie(call, &created)),
            )
        }
        SignIn::SecondFactor { pending, .. } => Ok(super::mfa::challenge_reply(call, &pending)),
    }
}

pub(super) async fn sign_out(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let id = principal.require_session()?;
    call.auth.accounts().sign_out(id, &call.client).await?;
    sessions_ended(call, principal.user.id).await;
    Ok(Reply::empty(StatusCode::NO_CONTENT).cookie(removal_cookie(call)))
}

pub(super) async fn session(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let (org, role) = match &principal.org {
        Some((org_id, role)) => {
            let org = call.auth.store().organization(*org_id).await?;
            (
                org.as_ref().map(OrgView::from),
                Some(role.as_str().to_owned()),
            )
        }
        None => (None, None),
    };
    let session = match &principal.credential {
        crate::principal::Credential::Session {
            id,
            expires_at,
            authenticated_at,
        } => Some(SessionView::new(*id, *expires_at, *authenticated_at)),
        crate::principal::Credential::ApiToken { .. } => None,
    };
    let permissions = principal
        .permissions()
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    Ok(Reply::json(
        StatusCode::OK,
        &CurrentSession {
            user: UserView::from(&*principal.user),
            session,
            org,
            role,
            permissions,
            mfa: MfaSummary {
                enabled: call
                    .auth
                    .mfa()
                    .status(principal.user.id)
                    .await?
                    .has_second_factor(),
                org_blocked: principal.org_mfa_blocked(),
            },
        },
    ))
}

pub(super) async fn sessions(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let current = principal.require_session()?;
    let list = call.auth.sessions().list(principal.user.id).await?;
    let items: Vec<SessionListItem> = list
        .iter()
        .map(|s| SessionListItem::new(s, current))
        .collect();
    Ok(Reply::json(StatusCode::OK, &items))
}

pub(super) async fn end_session(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let current = principal.require_session()?;
    let not_found = || AuthError::new(ErrorCode::NotFound);
    let id: SessionId = call.id_param("session_id").ok_or_else(not_found)?;
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
    sessions_ended(call, principal.user.id).await;
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
    sessions_ended(call, principal.user.id).await;
    Ok(Reply::empty(StatusCode::NO_CONTENT).cookie(removal_cookie(call)))
}

/// `GET /auth/verify-email?token=`: the clicked link; verify, then go to the app.
pub(super) async fn verify_email_link(call: &Call<'_>) -> Result<Reply, AuthError> {
    let token = call
        .query_param("token")
        .ok_or(AuthError::new(ErrorCode::InvalidLink))?;
    let user = call
        .auth
        .accounts()
        .verify_email(&token, &call.client)
        .await?;
    let reply = Reply::redirect(
        StatusCode::SEE_OTHER,
        call.auth.surface().after_sign_in_path().to_owned(),
    );
    rotated_if_own_session(call, user.id, reply).await
}

/// `POST /auth/verify-email {token}`.
pub(super) async fn verify_email(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: TokenBody = call.body()?;
    let user = call
        .auth
        .accounts()
        .verify_email(&body.token, &call.client)
        .await?;
    let reply = Reply::json(StatusCode::OK, &UserReply::new(&user));
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
    let body: EmailBody = call.body()?;
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
    let body: ResetConfirmBody = call.body()?;
    let password = SecretString::from(body.password);
    let user_id = call
        .auth
        .accounts()
        .confirm_password_reset(&body.token, &password, &call.client)
        .await?;
    sessions_ended(call, user_id).await;
    let reply = Reply::json(StatusCode::OK, &Done {});
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
    call.auth.require_recent_auth(principal)?;
    let body: ChangePasswordBody = call.body()?;
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
    sessions_ended(call, principal.user.id).await;
    // The other sessions ended; this one goes on under a new id.
    let cookie = rotate_session(call, session_id).await?;
    Ok(Reply::json(StatusCode::OK, &Done {}).cookie(cookie))
}
