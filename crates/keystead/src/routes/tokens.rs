//! `/api/tokens` and `/.well-known/jwks.json`.

use http::StatusCode;
use serde_json::Value;

use super::schema::{Jwks, NewTokenBody, NewTokenReply, TokenView};
use super::{Call, Reply};
use crate::tokens::ApiTokens;
use crate::{ApiTokenId, AuthError, ErrorCode, OrgId, Principal};

/// The largest `expires_in_days` read as a number at all: far above any configured maximum,
/// small enough that no arithmetic on it overflows. The configured maximum is checked next.
const MAX_EXPIRES_IN_DAYS: i64 = 100_000;

/// `expires_in_days` as sent: absent for the default, else a JSON integer from 1 to
/// [`MAX_EXPIRES_IN_DAYS`] (the configured maximum is the flow's check). Anything else (a
/// float, a string, `null`, a number out of range) is `invalid_request`, before any
/// arithmetic.
pub(super) fn expires_in_days(value: Option<&Value>) -> Result<Option<i64>, AuthError> {
    let Some(value) = value else {
        return Ok(None);
    };
    value
        .as_i64()
        .filter(|days| (1..=MAX_EXPIRES_IN_DAYS).contains(days))
        .map(Some)
        .ok_or_else(|| {
            AuthError::new(ErrorCode::InvalidRequest)
                .with_detail("expires_in_days must be a whole number of days, 1 or more.")
        })
}

fn enabled<'a>(call: &'a Call<'_>) -> Result<&'a ApiTokens, AuthError> {
    // Without token support the routes do not exist.
    call.auth
        .tokens()
        .ok_or(AuthError::new(ErrorCode::NotFound))
}

/// The caller of a token route and its active organization (403 without one).
fn caller<'c>(call: &'c Call<'_>) -> Result<(&'c Principal, OrgId), AuthError> {
    let principal = call.principal()?;
    principal.require_session()?;
    let org_id = principal.org_id().ok_or_else(|| {
        AuthError::new(ErrorCode::Forbidden).with_detail("No active organization.")
    })?;
    Ok((principal, org_id))
}

/// `POST /api/tokens {name, scopes, expires_in_days?}`: needs `tokens:create`.
pub(super) async fn create(call: &Call<'_>) -> Result<Reply, AuthError> {
    let tokens = enabled(call)?;
    let (principal, _) = caller(call)?;
    principal.require("tokens:create")?;
    // A token is a long-lived credential: a step-up action.
    call.auth.require_recent_auth(principal)?;
    // Per user, before anything is read or made: 429 past the limit.
    let limiter = call.auth.accounts().rate_limiter();
    limiter.hit_token_create(principal.user.id).await?;
    let body: NewTokenBody = call.body()?;
    let expires_in_days = expires_in_days(body.expires_in_days.as_ref())?;
    let (record, token) = tokens
        .issue(
            principal,
            call.auth.roles(),
            &body.name,
            &body.scopes,
            expires_in_days,
        )
        .await?;
    call.auth
        .notify(
            &principal.user,
            crate::mail::SecurityNotice::ApiTokenCreated(record.name.clone()),
        )
        .await;
    Ok(Reply::json(
        StatusCode::CREATED,
        &NewTokenReply::new(&record, token.expose().to_owned()),
    ))
}

/// `GET /api/tokens`: everyone in the org sees their own tokens; `tokens:manage` sees all.
pub(super) async fn list(call: &Call<'_>) -> Result<Reply, AuthError> {
    enabled(call)?;
    let (principal, org_id) = caller(call)?;
    let only = if principal.has("tokens:manage") {
        None
    } else {
        Some(principal.user.id)
    };
    let records = call.auth.store().api_tokens_for_org(org_id, only).await?;
    let items: Vec<TokenView> = records.iter().map(TokenView::from).collect();
    Ok(Reply::json(StatusCode::OK, &items))
}

pub(super) async fn revoke(call: &Call<'_>) -> Result<Reply, AuthError> {
    let tokens = enabled(call)?;
    let principal = call.principal()?;
    principal.require_session()?;
    let not_found = || AuthError::new(ErrorCode::NotFound);
    let id: ApiTokenId = call.id_param("token_id").ok_or_else(not_found)?;
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
    let keys = match tokens.keys().jwks() {
        Value::Object(mut set) => match set.remove("keys") {
            Some(Value::Array(keys)) => keys,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    Ok(Reply::json(StatusCode::OK, &Jwks { keys }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expires_in_days_is_a_whole_number_in_range_or_invalid() {
        assert_eq!(expires_in_days(None).unwrap(), None);
        assert_eq!(expires_in_days(Some(&json!(1))).unwrap(), Some(1));
        assert_eq!(expires_in_days(Some(&json!(365))).unwrap(), Some(365));
        for bad in [
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(-1),
            json!(0),
            json!(1e308),
            json!(1.5),
            json!(365.0),
            json!("12"),
            json!(null),
            json!(true),
            json!([]),
            json!({}),
        ] {
            assert_eq!(
                expires_in_days(Some(&bad)).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_token_body_keeps_null_apart_from_absent() {
        let absent: NewTokenBody = serde_json::from_str(r#"{"name":"a","scopes":[]}"#).unwrap();
        assert_eq!(absent.expires_in_days, None);
        let null: NewTokenBody =
            serde_json::from_str(r#"{"name":"a","scopes":[],"expires_in_days":null}"#).unwrap();
        assert_eq!(null.expires_in_days, Some(Value::Null));
        let huge: NewTokenBody = serde_json::from_str(
            r#"{"name":"a","scopes":[],"expires_in_days":18446744073709551616}"#,
        )
        .unwrap();
        assert!(expires_in_days(huge.expires_in_days.as_ref()).is_err());
    }
}
