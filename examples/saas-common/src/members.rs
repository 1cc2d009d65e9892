//! What the members page and the invitation page show: the same for both example apps.

use keystead::routes::percent_encode;
use keystead::{Auth, AuthError, ErrorCode, Principal, User};
use serde_json::{Value, json};

/// What `/dashboard/members` shows: the active organization's members (with `members:read`),
/// and for those with `members:manage` the invitation form (with the roles the user may
/// invite to: never above their own, owner only for owners), the pending invitations, and per
/// member the role changes and removal the user may make. Everyone may leave. Each member
/// shows whether they have a second factor; `mfa_blocked` says the organization's MFA policy
/// holds the caller back until they set one up.
///
/// # Errors
/// Store errors.
pub async fn members_page_context(auth: &Auth, principal: &Principal) -> Result<Value, AuthError> {
    let Some(org_id) = principal.org_id() else {
        return Ok(json!({ "user": principal.user, "org": null }));
    };
    let orgs = auth.orgs();
    let caller = match orgs.caller(principal, org_id).await {
        Ok(caller) => caller,
        // Removed meanwhile: the page shows no organization.
        Err(err) if err.code == ErrorCode::Forbidden => {
            return Ok(json!({ "user": principal.user, "org": null }));
        }
        Err(err) => return Err(err),
    };
    let org = orgs.organization(&caller).await?;
    let members = if caller.principal.has("members:read") {
        orgs.members(&caller).await?
    } else {
        Vec::new()
    };
    let can_manage = caller.principal.has("members:manage");
    let is_owner = caller.role().is_owner();
    // The roles the caller may grant: known roles that grant nothing beyond the caller's own
    // permissions, owner only for owners (what the core enforces).
    let grantable: Vec<&str> = if can_manage {
        auth.roles()
            .roles()
            .filter(|role| {
                (is_owner || !role.is_owner())
                    && caller.principal.require_role(role, auth.roles()).is_ok()
            })
            .map(|role| role.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            let role = &m.membership.role;
            let is_self = m.user.id == caller.user_id();
            let manageable = can_manage
                && !is_self
                && grantable.contains(&role.as_str())
                && (is_owner || !role.is_owner());
            json!({
                "user_id": m.user.id.to_string(),
                "name": m.user.name,
                "email": m.user.email.as_str(),
                "role": role.as_str(),
                "joined_at": m.membership.joined_at.date().to_string(),
                "is_self": is_self,
                "manageable": manageable,
                "mfa_enabled": m.second_factor,
            })
        })
        .collect();
    let invitations: Vec<Value> = if can_manage {
        orgs.pending_invitations(&caller)
            .await?
            .iter()
            .map(|i| {
                json!({
                    "id": i.id.to_string(),
                    "email": i.email.as_str(),
                    "role": i.role.as_str(),
                    "expires_at": i.expires_at.date().to_string(),
                    "revocable": grantable.contains(&i.role.as_str()),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(json!({
        "user": principal.user,
        "org": {
            "id": org.id.to_string(),
            "name": org.name,
            "mfa_required": org.mfa_required,
        },
        "mfa_blocked": caller.principal.org_mfa_blocked(),
        "role": caller.role().as_str(),
        "members": members,
        "can_manage": can_manage,
        "can_audit": caller.principal.has(keystead::audit::AUDIT_READ),
        "roles": grantable,
        "invitations": invitations,
    }))
}

/// What the invitation page (the mailed link, `/accept-invitation?token=…`) shows: for a
/// signed-in user a form that posts the token to `/invitations/accept`; for a visitor, links to
/// sign in or sign up that come back to this page.
#[must_use]
pub fn accept_invitation_context(user: Option<&User>, token: &str) -> Value {
    let back = format!("/accept-invitation?token={}", percent_encode(token));
    json!({
        "user": user,
        "token": token,
        "next": percent_encode(&back),
    })
}
