//! `/orgs…`, `/invitations/accept` and `/auth/active-org`: organizations, their members and
//! invitations, and the session's active organization. The rules are the flows' (see
//! [`crate::orgs`]); this module parses and answers.
//!
//! Every `/orgs/{org_id}/…` route acts with the caller's role in the organization of the path
//! (not necessarily the active one); a non-member and an unknown or malformed organization id
//! are answered alike, 403 `forbidden`.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::response::rfc3339;
use super::{Call, Reply, Route};
use crate::orgs::OrgCaller;
use crate::{
    AuthError, ErrorCode, Invitation, InvitationId, Member, Membership, OrgId, Role, UserId,
};

#[derive(Deserialize)]
pub(super) struct CreateOrgBody {
    name: String,
}

#[derive(Deserialize)]
pub(super) struct ActiveOrgBody {
    org_id: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct InviteBody {
    email: String,
    role: String,
}

#[derive(Deserialize)]
pub(super) struct RoleBody {
    role: String,
}

#[derive(Deserialize)]
pub(super) struct TransferBody {
    user_id: String,
}

#[derive(Deserialize)]
pub(super) struct TokenBody {
    token: String,
}

/// The route of a path under `/orgs/` (`rest` is what follows that prefix).
pub(super) fn route(rest: &str) -> Option<Route> {
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(match segments.as_slice() {
        [_] => Route::Org,
        [_, "members"] => Route::OrgMembers,
        [_, "members", _] => Route::OrgMember,
        [_, "invitations"] => Route::OrgInvitations,
        [_, "invitations", _] => Route::OrgInvitation,
        [_, "transfer"] => Route::OrgTransfer,
        _ => return None,
    })
}

/// A role named in a body: `invalid_request` when malformed (an unknown one is the flow's).
fn parse_role(name: &str) -> Result<Role, AuthError> {
    Role::new(name.to_owned()).map_err(|_| {
        AuthError::new(ErrorCode::InvalidRequest).with_detail(format!("Unknown role {name:?}."))
    })
}

/// The organization of the path and the caller's membership there.
async fn caller(call: &Call<'_>) -> Result<OrgCaller, AuthError> {
    let principal = call.principal()?;
    let not_a_member = || {
        AuthError::new(ErrorCode::Forbidden)
            .with_detail("You are not a member of that organization.")
    };
    let org_id: OrgId = call
        .id
        .as_deref()
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse().ok())
        .ok_or_else(not_a_member)?;
    call.auth.orgs().caller(principal, org_id).await
}

/// The id after `/orgs/{org_id}/members/` or `/orgs/{org_id}/invitations/`; `not_found` when
/// it is not one.
fn sub_id<T: std::str::FromStr>(call: &Call<'_>) -> Result<T, AuthError> {
    call.id
        .as_deref()
        .and_then(|rest| rest.split('/').nth(2))
        .and_then(|id| id.parse().ok())
        .ok_or(AuthError::new(ErrorCode::NotFound))
}

/// The contract's member JSON: `{user_id, email, name, role, joined_at}`.
fn member_json(member: &Member) -> Value {
    json!({
        "user_id": member.user.id.to_string(),
        "email": member.user.email.as_str(),
        "name": member.user.name,
        "role": member.membership.role.as_str(),
        "joined_at": rfc3339(member.membership.joined_at),
    })
}

/// The contract's invitation JSON `{id, email, role, expires_at}`, with who invited and when.
fn invitation_json(invitation: &Invitation, full: bool) -> Value {
    let mut value = json!({
        "id": invitation.id.to_string(),
        "email": invitation.email.as_str(),
        "role": invitation.role.as_str(),
        "expires_at": rfc3339(invitation.expires_at),
    });
    if full {
        value["invited_by"] = Value::from(invitation.invited_by.to_string());
        value["created_at"] = Value::from(rfc3339(invitation.created_at));
    }
    value
}

/// `{org_id, user_id, role}` of a membership without its user record.
fn membership_json(membership: &Membership) -> Value {
    json!({
        "org_id": membership.org_id.to_string(),
        "user_id": membership.user_id.to_string(),
        "role": membership.role.as_str(),
    })
}

pub(super) async fn orgs(call: &Call<'_>) -> Result<Reply, AuthError> {
    if call.method == Method::POST {
        create(call).await
    } else {
        list(call).await
    }
}

async fn create(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let body: CreateOrgBody = call.json()?;
    let (org, membership) = call
        .auth
        .orgs()
        .create(principal, &body.name, &call.client)
        .await?;
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

/// `DELETE /orgs/{org_id}`: needs `org:delete`.
pub(super) async fn org(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    call.auth.orgs().delete(&caller, &call.client).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `GET /orgs/{org_id}/members`.
pub(super) async fn members(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let members = call.auth.orgs().members(&caller).await?;
    Ok(Reply::json(
        StatusCode::OK,
        Value::Array(members.iter().map(member_json).collect()),
    ))
}

/// `PATCH` (change the role) and `DELETE` (remove, or leave) `/orgs/{org_id}/members/{user_id}`.
pub(super) async fn member(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let user_id: UserId = sub_id(call)?;
    if call.method == Method::DELETE {
        if user_id == caller.user_id() {
            // Leaving acts on the user, not on the organization's resources: a browser
            // session, never an API token (no scope names it).
            caller.principal.require_session()?;
        }
        call.auth
            .orgs()
            .remove_member(&caller, user_id, &call.client)
            .await?;
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    }
    let body: RoleBody = call.json()?;
    let role = parse_role(&body.role)?;
    let member = call
        .auth
        .orgs()
        .change_role(&caller, user_id, &role, &call.client)
        .await?;
    let reply = Reply::json(StatusCode::OK, member_json(&member));
    if user_id == caller.user_id() {
        // The caller changed their own role: a privilege change of this session.
        return rotated(call, reply).await;
    }
    Ok(reply)
}

/// `reply` with the request's session rotated (see [`super::account::rotate_session`]), when
/// the request came with a session: after a change of its own user's role or active
/// organization. A role change of another user reaches that user's sessions through the
/// caches (they re-read the membership); those sessions are not on this request, so their ids
/// stay.
async fn rotated(call: &Call<'_>, reply: Reply) -> Result<Reply, AuthError> {
    let session = call.authn.principal.as_ref().and_then(|p| p.session_id());
    Ok(match session {
        Some(id) => reply.cookie(super::account::rotate_session(call, id).await?),
        None => reply,
    })
}

/// `GET` (pending) and `POST` (invite) `/orgs/{org_id}/invitations`.
pub(super) async fn invitations(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    if call.method == Method::GET {
        let pending = call.auth.orgs().pending_invitations(&caller).await?;
        return Ok(Reply::json(
            StatusCode::OK,
            Value::Array(pending.iter().map(|i| invitation_json(i, true)).collect()),
        ));
    }
    let body: InviteBody = call.json()?;
    let role = parse_role(&body.role)?;
    let invitation = call
        .auth
        .orgs()
        .invite(&caller, &body.email, &role, &call.client)
        .await?;
    Ok(Reply::json(
        StatusCode::CREATED,
        invitation_json(&invitation, false),
    ))
}

/// `DELETE /orgs/{org_id}/invitations/{id}`: revokes a pending invitation.
pub(super) async fn invitation(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let id: InvitationId = sub_id(call)?;
    call.auth
        .orgs()
        .revoke_invitation(&caller, id, &call.client)
        .await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /orgs/{org_id}/transfer {user_id}`: an owner hands ownership to another member.
pub(super) async fn transfer(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let body: TransferBody = call.json()?;
    let to: UserId = body
        .user_id
        .parse()
        .map_err(|_| AuthError::new(ErrorCode::NotFound).with_detail("No such member."))?;
    let (from, to) = call
        .auth
        .orgs()
        .transfer_ownership(&caller, to, &call.client)
        .await?;
    // The caller is an owner no more: a privilege change of this session.
    rotated(
        call,
        Reply::json(
            StatusCode::OK,
            json!({ "from": membership_json(&from), "to": membership_json(&to) }),
        ),
    )
    .await
}

/// `POST /invitations/accept {token}`: answers `{org_id, role}`; the organization becomes the
/// session's active one.
pub(super) async fn accept_invitation(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let session_id = principal.require_session()?;
    let body: TokenBody = call.json()?;
    let membership = call
        .auth
        .orgs()
        .accept_invitation(
            principal.user.id,
            Some(session_id),
            &body.token,
            &call.client,
        )
        .await?;
    // A new membership that becomes the active organization: a privilege change.
    rotated(
        call,
        Reply::json(
            StatusCode::OK,
            json!({ "org_id": membership.org_id.to_string(), "role": membership.role.as_str() }),
        ),
    )
    .await
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
        return rotated(
            call,
            Reply::json(
                StatusCode::OK,
                json!({ "org": null, "role": null, "permissions": [] }),
            ),
        )
        .await;
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
    rotated(
        call,
        Reply::json(
            StatusCode::OK,
            json!({
                "org": { "id": org.id.to_string(), "name": org.name, "slug": org.slug },
                "role": membership.role.as_str(),
                "permissions": permissions,
            }),
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_paths_route_by_their_segments() {
        let id = OrgId::new().to_string();
        let user = UserId::new().to_string();
        assert_eq!(route(&id), Some(Route::Org));
        assert_eq!(route(&format!("{id}/members")), Some(Route::OrgMembers));
        assert_eq!(
            route(&format!("{id}/members/{user}")),
            Some(Route::OrgMember)
        );
        assert_eq!(
            route(&format!("{id}/invitations")),
            Some(Route::OrgInvitations)
        );
        assert_eq!(
            route(&format!("{id}/invitations/{user}")),
            Some(Route::OrgInvitation)
        );
        assert_eq!(route(&format!("{id}/transfer")), Some(Route::OrgTransfer));
        for bad in [
            "",
            "/",
            &format!("{id}/"),
            &format!("{id}/members/"),
            &format!("{id}//members"),
            &format!("{id}/members/{user}/x"),
            &format!("{id}/billing"),
        ] {
            assert_eq!(route(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn malformed_roles_are_invalid_requests() {
        assert_eq!(parse_role("admin").unwrap(), Role::ADMIN);
        assert_eq!(
            parse_role("Super User").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
