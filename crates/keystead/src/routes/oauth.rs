//! `/auth/oauth/…` and `/auth/accounts…`: sign-in with a provider, and the user's links.

use http::StatusCode;

use super::response::percent_encode;
use super::schema::{AccountsReply, LinkedAccount, ProviderView, ProvidersReply, UserView};
use super::{Call, Reply};
use crate::oauth::{CallbackParams, FlowFailure, FlowOutcome, StartedFlow};
use crate::{AuthError, ErrorCode};

/// A redirect with `status`.
fn redirect(status: StatusCode, location: String) -> Reply {
    Reply::redirect(status, location)
}

/// Back to the sign-in page, saying why; `next` is kept.
fn to_sign_in(call: &Call<'_>, failure: FlowFailure, next: Option<&str>) -> Reply {
    let mut location = format!(
        "{}?error={}",
        call.auth.surface().sign_in_path(),
        failure.code()
    );
    if let Some(next) = next {
        location.push_str("&next=");
        location.push_str(&percent_encode(next));
    }
    redirect(StatusCode::FOUND, location)
}

/// The provider's id from the path.
fn provider_id<'c>(call: &'c Call<'_>) -> Result<&'c str, AuthError> {
    call.param("provider")
        .filter(|id| call.auth.oauth().provider(id).is_some())
        .ok_or(AuthError::new(ErrorCode::NotFound))
}

/// The redirect to the provider, with the cookie that binds the flow to this browser.
fn to_provider(call: &Call<'_>, status: StatusCode, flow: &StartedFlow) -> Reply {
    redirect(status, flow.authorization_url.clone())
        .cookie(call.auth.cookies().oauth_cookie(&flow.cookie_token))
}

/// `GET /auth/oauth/{provider}?next=`: 302 to the provider.
pub(super) async fn start(call: &Call<'_>) -> Result<Reply, AuthError> {
    let provider = provider_id(call)?;
    let next = call.query_param("next");
    Ok(
        match call
            .auth
            .oauth()
            .start(provider, next.as_deref(), None, &call.client)
            .await?
        {
            Ok(flow) => to_provider(call, StatusCode::FOUND, &flow),
            Err(failure) => to_sign_in(call, failure, None),
        },
    )
}

/// `POST /auth/oauth/{provider}/link?next=`: a signed-in user links the provider; 303 to it.
pub(super) async fn link(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let provider = provider_id(call)?;
    let next = call.query_param("next");
    Ok(
        match call
            .auth
            .oauth()
            .start(
                provider,
                next.as_deref(),
                Some(principal.user.id),
                &call.client,
            )
            .await?
        {
            Ok(flow) => to_provider(call, StatusCode::SEE_OTHER, &flow),
            Err(failure) => redirect(
                StatusCode::SEE_OTHER,
                format!(
                    "{}?error={}",
                    call.auth.surface().after_sign_in_path(),
                    failure.code()
                ),
            ),
        },
    )
}

/// `GET /auth/oauth/{provider}/callback`: the provider sends the browser back here.
pub(super) async fn callback(call: &Call<'_>) -> Result<Reply, AuthError> {
    let provider = match provider_id(call) {
        Ok(provider) => provider,
        Err(_) => return Err(AuthError::new(ErrorCode::InvalidLink)),
    };
    let params = CallbackParams {
        state: call.query_param("state"),
        code: call.query_param("code"),
        error: call.query_param("error"),
    };
    let signed_in = call.authn.principal.as_ref().map(|p| p.user.id);
    let outcome = call
        .auth
        .oauth()
        .callback(
            provider,
            call.oauth_cookie.as_deref(),
            &params,
            signed_in,
            &call.client,
        )
        .await;
    // Every answer here clears the flow cookie (`Auth::handle` adds the removal).
    Ok(match outcome {
        Err(err) if err.code == ErrorCode::InvalidLink => {
            return Err(err.with_detail(
                "This sign-in is not in progress in this browser, or it is over. Start again.",
            ));
        }
        Err(err) => return Err(err),
        Ok(FlowOutcome::SignedIn { session, next, .. }) => {
            super::account::end_previous_session(call).await;
            let max_age = session.session.expires_at - call.auth.clock().now();
            redirect(StatusCode::FOUND, next)
                .cookie(call.auth.cookies().session_cookie(&session.token, max_age))
        }
        Ok(FlowOutcome::SecondFactor { pending, next, .. }) => {
            // To the sign-in page's second step, holding the pending sign-in.
            let location = format!(
                "{}?mfa=required&next={}",
                call.auth.surface().sign_in_path(),
                percent_encode(&next)
            );
            redirect(StatusCode::FOUND, location)
                .cookie(call.auth.cookies().mfa_cookie(&pending.token))
        }
        Ok(FlowOutcome::Linked { next }) => redirect(StatusCode::FOUND, next),
        Ok(FlowOutcome::Failed { failure, next }) => to_sign_in(call, failure, next.as_deref()),
    })
}

/// `GET /auth/providers`: the configured providers, in the order they were added.
pub(super) fn providers(call: &Call<'_>) -> Result<Reply, AuthError> {
    let providers = call
        .auth
        .identity_providers()
        .iter()
        .map(|p| ProviderView {
            id: p.id().to_owned(),
            name: p.display_name().to_owned(),
        })
        .collect();
    Ok(Reply::json(StatusCode::OK, &ProvidersReply { providers }))
}

/// `GET /auth/accounts`: the signed-in user's linked providers.
pub(super) async fn accounts(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let links = call.auth.oauth().links(principal.user.id).await?;
    let has_password = call
        .auth
        .store()
        .password_credential(principal.user.id)
        .await?
        .is_some();
    Ok(Reply::json(
        StatusCode::OK,
        &AccountsReply {
            user: UserView::from(&*principal.user),
            has_password,
            accounts: links.iter().map(LinkedAccount::from).collect(),
        },
    ))
}

/// `DELETE /auth/accounts/{provider}`: unlink, unless it is the last way to sign in.
pub(super) async fn unlink(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let provider = call
        .param("provider")
        .ok_or(AuthError::new(ErrorCode::NotFound))?;
    call.auth
        .oauth()
        .unlink(principal.user.id, provider, &call.client)
        .await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
