//! `/api/tokens` and `/.well-known/jwks.json`.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::response::rfc3339;
use super::{Call, Reply};
use crate::tokens::ApiTokens;
use crate::{ApiTokenId, ApiTokenRecord, AuthError, ErrorCode};

#[derive(Deserialize)]
struct NewToken {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    expires_in_days: Option<i64>,
}

fn enabled<'a>(call: &'a Call<'_>) -> Result<&'a ApiTokens, AuthError> {
    // Without token support the routes do not exist.
    call.auth
        .tokens()
        .ok_or(AuthError::new(ErrorCode::NotFound))
}

fn record_json(record: &ApiTokenRecord) -> Value {
    json!({
        "id": record.id.to_string(),
        "name": record.name,
        "scopes": record.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "created_by": record.created_by.to_string(),
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.expires_at),
        "last_used_at": record.last_used_at.map(rfc3339),
        "revoked_at": record.revoked_at.map(rfc3339),
    })
}

pub(super) async fn tokens(call: &Call<'_>) -> Result<Reply, AuthError> {
    let tokens = enabled(call)?;
    let principal = call.principal()?;
    principal.require_session()?;
    let org_id = principal.org_id().ok_or_else(|| {
        AuthError::new(ErrorCode::Forbidden).with_detail("No active organization.")
    })?;
    if call.method == Method::POST {
        principal.require("tokens:create")?;
        // Per user, before anything is read or made: 429 past the limit.
        let limiter = call.auth.accounts().rate_limiter();
        limiter.hit_token_create(principal.user.id).await?;
        let body: NewToken = call.json()?;
        let (record, token) = tokens
            .issue(
                principal,
                call.auth.roles(),
                &body.name,
                &body.scopes,
                body.expires_in_days,
            )
            .await?;
        return Ok(Reply::json(
            StatusCode::CREATED,
            json!({
                "id": record.id.to_string(),
                "name": record.name,
                "token": token.expose(),
                "scopes": record.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "expires_at": rfc3339(record.expires_at),
            }),
        ));
    }
    // Listing: everyone in the org sees their own tokens; `tokens:manage` sees all.
    let only = if principal.has("tokens:manage") {
        None
    } else {
        Some(principal.user.id)
    };
    let records = call.auth.store().api_tokens_for_org(org_id, only).await?;
    Ok(Reply::json(
        StatusCode::OK,
        Value::Array(records.iter().map(record_json).collect()),
    ))
}

pub(super) async fn revoke(call: &Call<'_>) -> Result<Reply, AuthError> {
    let tokens = enabled(call)?;
    let principal = call.principal()?;
    principal.require_session()?;
    let not_found = || AuthError::new(ErrorCode::NotFound);
    let id: ApiTokenId = call
        .id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .ok_or_else(not_found)?;
    // A token of another organization than the active one is answered as unknown.
    let record = call
        .auth
        .store()
        .api_token(id)
        .await?
        .filter(|r| Some(r.org_id) == principal.org_id())
        .ok_or_else(not_found)?;
    if record.created_by != principal.user.id && record.user_id != principal.user.id {
        principal.require("tokens:manage")?;
    }
    tokens.revoke(record.id, principal.user.id).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

pub(super) fn jwks(call: &Call<'_>) -> Result<Reply, AuthError> {
    let tokens = enabled(call)?;
    Ok(Reply::json(StatusCode::OK, tokens.keys().jwks()))
}
