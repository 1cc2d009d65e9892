//! `/orgs` and `/auth/active-org`: creating and listing organizations, picking the active one.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, Reply};
use crate::secret::generate_token;
use crate::store::Conflict;
use crate::{AuthError, ErrorCode, OrgId, Organization, StoreError};

/// The longest organization name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// The longest slug made from a name, before a uniqueness suffix.
const MAX_SLUG_LEN: usize = 48;

#[derive(Deserialize)]
struct CreateOrgBody {
    name: String,
}

#[derive(Deserialize)]
struct ActiveOrgBody {
    org_id: Option<String>,
}

pub(super) async fn orgs(call: &Call<'_>) -> Result<Reply, AuthError> {
    if call.method == Method::POST {
        create(call).await
    } else {
        list(call).await
    }
}

/// A URL-safe slug: lowercase ASCII letters and digits, runs of anything else as one `-`.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= MAX_SLUG_LEN {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "org".to_owned()
    } else {
        slug.to_owned()
    }
}

async fn create(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let body: CreateOrgBody = call.json()?;
    let name = body.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(
            AuthError::new(ErrorCode::InvalidRequest).with_detail(format!(
                "The name must be 1 to {MAX_NAME_CHARS} characters, without control characters."
            )),
        );
    }
    let base = slugify(name);
    let now = call.auth.clock().now();
    let mut attempt = 0;
    let (org, membership) = loop {
        let slug = if attempt == 0 {
            base.clone()
        } else {
            // A taken slug gets a random suffix; a few tries always suffice in practice.
            let suffix: String = generate_token()
                .expose()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(6)
                .collect::<String>()
                .to_ascii_lowercase();
            format!("{base}-{suffix}")
        };
        let org = Organization {
            id: OrgId::new(),
            name: name.to_owned(),
            slug,
            created_at: now,
        };
        match call
            .auth
            .store()
            .create_organization(&org, principal.user.id)
            .await
        {
            Ok(membership) => break (org, membership),
            Err(StoreError::Conflict(Conflict::OrgSlug)) if attempt < 5 => attempt += 1,
            Err(err) => return Err(err.into()),
        }
    };
    if let Some(session_id) = principal.session_id() {
        call.auth
            .sessions()
            .set_active_org(session_id, Some(org.id))
            .await?;
    }
    call.auth
        .audit(
            "org.created",
            Some(principal.user.id),
            Some(org.id),
            &call.client,
            json!({ "slug": org.slug }),
        )
        .await;
    Ok(Reply::json(
        StatusCode::CREATED,
        json!({
            "id": org.id.to_string(),
            "name": org.name,
            "slug": org.slug,
            "role": membership.role.as_str(),
        }),
    ))
}

async fn list(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let orgs = call
        .auth
        .store()
        .organizations_for_user(principal.user.id)
        .await?;
    let items: Vec<Value> = orgs
        .iter()
        .map(|o| {
            json!({
                "id": o.organization.id.to_string(),
                "name": o.organization.name,
                "slug": o.organization.slug,
                "role": o.role.as_str(),
            })
        })
        .collect();
    Ok(Reply::json(StatusCode::OK, Value::Array(items)))
}

pub(super) async fn set_active_org(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let session_id = principal.require_session()?;
    let body: ActiveOrgBody = call.json()?;
    let Some(org_id) = body.org_id else {
        call.auth
            .sessions()
            .set_active_org(session_id, None)
            .await?;
        return Ok(Reply::json(
            StatusCode::OK,
            json!({ "org": null, "role": null, "permissions": [] }),
        ));
    };
    // An id that is no organization of the user's is refused alike, existing or not.
    let forbidden = || {
        AuthError::new(ErrorCode::Forbidden)
            .with_detail("You are not a member of that organization.")
    };
    let org_id: OrgId = org_id.parse().map_err(|_| forbidden())?;
    let membership = call
        .auth
        .store()
        .membership(org_id, principal.user.id)
        .await?
        .ok_or_else(forbidden)?;
    let org = call
        .auth
        .store()
        .organization(org_id)
        .await?
        .ok_or_else(forbidden)?;
    call.auth
        .sessions()
        .set_active_org(session_id, Some(org_id))
        .await?;
    let permissions: Vec<&str> = call
        .auth
        .roles()
        .permissions(&membership.role)
        .iter()
        .map(|p| p.as_str())
        .collect();
    Ok(Reply::json(
        StatusCode::OK,
        json!({
            "org": { "id": org.id.to_string(), "name": org.name, "slug": org.slug },
            "role": membership.role.as_str(),
            "permissions": permissions,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Acme Inc."), "acme-inc");
        assert_eq!(slugify("  --Ünïcode Ltd--  "), "n-code-ltd");
        assert_eq!(slugify("日本"), "org");
        assert!(slugify(&"a".repeat(500)).len() <= 48);
    }
}
