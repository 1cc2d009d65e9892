//! `/auth/mfa…` and `/auth/reauthenticate`: second factors, the second step of sign-in, and
//! step-up re-authentication.

use http::StatusCode;

use super::schema::{
    CodeBody, MfaChallengeReply, MfaPolicyBody, MfaPolicyReply, MfaStatusReply, ReauthenticateBody,
    ReauthenticatedReply, RecoveryCodesReply, SignInReply, TotpEnrolmentReply, VerifyBody,
};
use super::{Call, Reply};
use crate::mfa::{PendingSignIn, SecondFactor, methods};
use crate::{AuditKind, AuthError, ErrorCode, OrgId, SecretString};

/// The answer to a first factor that passed for a user with a second one: `{mfa_required,
/// methods}` and the pending sign-in cookie, no session.
pub(super) fn challenge_reply(call: &Call<'_>, pending: &PendingSignIn) -> Reply {
    Reply::json(
        StatusCode::OK,
        &MfaChallengeReply {
            mfa_required: true,
            methods: pending.methods.iter().map(|m| (*m).to_owned()).collect(),
        },
    )
    .cookie(call.auth.cookies().mfa_cookie(&pending.token))
}

/// The one factor of a body that may hold a code or a recovery code (exactly one).
fn one_factor<'b>(
    code: Option<&'b str>,
    recovery_code: Option<&'b str>,
) -> Result<SecondFactor<'b>, AuthError> {
    match (code, recovery_code) {
        (Some(code), None) => Ok(SecondFactor::Totp(code)),
        (None, Some(code)) => Ok(SecondFactor::RecoveryCode(code)),
        _ => Err(AuthError::new(ErrorCode::InvalidRequest)
            .with_detail("Send exactly one of `code` and `recovery_code`.")),
    }
}

fn codes_reply(status: StatusCode, codes: &[SecretString]) -> Reply {
    Reply::json(
        status,
        &RecoveryCodesReply {
            recovery_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
        },
    )
}

/// `GET /auth/mfa`.
pub(super) async fn status(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let status = call.auth.mfa().status(principal.user.id).await?;
    Ok(Reply::json(
        StatusCode::OK,
        &MfaStatusReply {
            totp: status.totp,
            passkeys: status.passkeys,
            recovery_codes_left: status.recovery_codes,
            methods: methods(&status).into_iter().map(str::to_owned).collect(),
        },
    ))
}

/// `POST /auth/mfa/totp`: begins an enrolment (step-up).
pub(super) async fn begin_totp(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    call.auth.require_recent_auth(principal)?;
    let enrolment = call
        .auth
        .mfa()
        .begin_totp(&principal.user, &call.client)
        .await?;
    Ok(Reply::json(
        StatusCode::OK,
        &TotpEnrolmentReply {
            secret: enrolment.secret.expose().to_owned(),
            otpauth_url: enrolment.otpauth_url.expose().to_owned(),
            qr_svg: enrolment.qr_svg,
        },
    ))
}

/// `POST /auth/mfa/totp/confirm {code}`.
pub(super) async fn confirm_totp(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let body: CodeBody = call.body()?;
    let codes = call
        .auth
        .mfa()
        .confirm_totp(&principal.user, &body.code, &call.client)
        .await?;
    Ok(codes_reply(StatusCode::OK, &codes))
}

/// `DELETE /auth/mfa/totp` (step-up).
pub(super) async fn remove_totp(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    call.auth.require_recent_auth(principal)?;
    call.auth
        .mfa()
        .remove_totp(&principal.user, &call.client)
        .await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /auth/mfa/recovery-codes` (step-up): a new set; the old one is void.
pub(super) async fn regenerate_recovery_codes(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    call.auth.require_recent_auth(principal)?;
    let codes = call
        .auth
        .mfa()
        .regenerate_recovery_codes(&principal.user, &call.client)
        .await?;
    Ok(codes_reply(StatusCode::OK, &codes))
}

/// `POST /auth/mfa/verify {code | recovery_code}`: the second step of sign-in.
pub(super) async fn verify(call: &Call<'_>) -> Result<Reply, AuthError> {
    let body: VerifyBody = call.body()?;
    let factor = one_factor(body.code.as_deref(), body.recovery_code.as_deref())?;
    let completed = call
        .auth
        .mfa()
        .verify(call.mfa_cookie.as_deref(), factor, &call.client)
        .await?;
    super::account::end_previous_session(call).await;
    Ok(finished_sign_in(call, &completed))
}

/// The answer to a completed second step: `{user, session}`, the session cookie, and the
/// pending sign-in cookie cleared.
pub(super) fn finished_sign_in(call: &Call<'_>, completed: &crate::mfa::CompletedSignIn) -> Reply {
    let max_age = completed.session.session.expires_at - call.auth.clock().now();
    Reply::json(
        StatusCode::OK,
        &SignInReply::new(&completed.user, &completed.session.session),
    )
    .cookie(
        call.auth
            .cookies()
            .session_cookie(&completed.session.token, max_age),
    )
    .cookie(call.auth.cookies().mfa_removal_cookie())
}

/// `POST /auth/reauthenticate {password | code | recovery_code}`: step-up.
pub(super) async fn reauthenticate(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let session_id = principal.require_session()?;
    let body: ReauthenticateBody = call.body()?;
    let at = match (body.password, body.code, body.recovery_code) {
        (Some(password), None, None) => {
            call.auth
                .accounts()
                .check_password(
                    &principal.user,
                    &SecretString::from(password),
                    AuditKind::SignInFailed,
                    &call.client,
                )
                .await?;
            let at = call.auth.sessions().reauthenticated(session_id).await?;
            crate::audit::record(
                &**call.auth.store(),
                &crate::AuditEvent {
                    actor_id: Some(principal.user.id),
                    user_id: Some(principal.user.id),
                    data: serde_json::json!({ "method": "password" }),
                    ..call
                        .client
                        .audit_event(AuditKind::Reauthenticated, call.auth.clock().now())
                },
            )
            .await;
            at
        }
        (None, code, recovery_code) => {
            let factor = one_factor(code.as_deref(), recovery_code.as_deref())?;
            call.auth
                .mfa()
                .reauthenticate(&principal.user, session_id, factor, &call.client)
                .await?
        }
        _ => {
            return Err(AuthError::new(ErrorCode::InvalidRequest)
                .with_detail("Send exactly one of `password`, `code` and `recovery_code`."));
        }
    };
    Ok(Reply::json(StatusCode::OK, &ReauthenticatedReply::new(at)))
}

/// `PUT /orgs/{org_id}/mfa-policy {required}` (members:manage, step-up).
pub(super) async fn set_org_policy(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let org_id: OrgId = call
        .id_param("org_id")
        .ok_or(AuthError::new(ErrorCode::NotFound))?;
    let body: MfaPolicyBody = call.body()?;
    let org = call
        .auth
        .orgs()
        .set_mfa_policy(principal, org_id, body.required, &call.client)
        .await?;
    Ok(Reply::json(
        StatusCode::OK,
        &MfaPolicyReply {
            org_id: org.id.to_string(),
            mfa_required: org.mfa_required,
        },
    ))
}
