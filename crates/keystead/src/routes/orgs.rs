//! `/orgs…`, `/invitations/accept` and `/auth/active-org`: organizations, their members and
//! invitations, and the session's active organization. The rules are the flows' (see
//! [`crate::orgs`]); this module parses and answers.
//!
//! Every `/orgs/{org_id}/…` route acts with the caller's role in the organization of the path
//! (not necessarily the active one); a non-member and an unknown or malformed organization id
//! are answered alike, 403 `forbidden`.

use http::StatusCode;

use super::schema::{
    AcceptReply, ActiveOrgBody, ActiveOrgReply, CreateOrgBody, InvitationView, InviteBody,
    MemberView, OrgView, OrgWithRole, RoleBody, TokenBody, TransferBody, TransferReply,
};
use super::{Call, Reply};
use crate::orgs::OrgCaller;
use crate::{AuthError, ErrorCode, InvitationId, OrgId, Role, UserId};

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
    let org_id: OrgId = call.id_param("org_id").ok_or_else(not_a_member)?;
    call.auth.orgs().caller(principal, org_id).await
}

/// The `{name}` id of the path; `not_found` when it is not one.
fn sub_id<T: std::str::FromStr>(call: &Call<'_>, name: &str) -> Result<T, AuthError> {
    call.id_param(name)
        .ok_or(AuthError::new(ErrorCode::NotFound))
}

/// `POST /orgs {name}`.
pub(super) async fn create(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let body: CreateOrgBody = call.body()?;
    let (org, membership) = call
        .auth
        .orgs()
        .create(principal, &body.name, &call.client)
        .await?;
    Ok(Reply::json(
        StatusCode::CREATED,
        &OrgWithRole::new(&org, &membership.role),
    ))
}

/// `GET /orgs`.
pub(super) async fn list(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let orgs = call
        .auth
        .store()
        .organizations_for_user(principal.user.id)
        .await?;
    let items: Vec<OrgWithRole> = orgs
        .iter()
        .map(|o| OrgWithRole::new(&o.organization, &o.role))
        .collect();
    Ok(Reply::json(StatusCode::OK, &items))
}

/// `DELETE /orgs/{org_id}`: needs `org:delete`.
pub(super) async fn delete(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    call.auth.orgs().delete(&caller, &call.client).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `GET /orgs/{org_id}/members`.
pub(super) async fn members(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let members = call.auth.orgs().members(&caller).await?;
    let items: Vec<MemberView> = members.iter().map(MemberView::from).collect();
    Ok(Reply::json(StatusCode::OK, &items))
}

/// `DELETE /orgs/{org_id}/members/{user_id}`: remove a member, or leave.
pub(super) async fn remove_member(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let user_id: UserId = sub_id(call, "user_id")?;
    if user_id == caller.user_id() {
        // Leaving acts on the user, not on the organization's resources: a browser
        // session, never an API token (no scope names it).
        caller.principal.require_session()?;
    }
    call.auth
        .orgs()
        .remove_member(&caller, user_id, &call.client)
        .await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `PATCH /orgs/{org_id}/members/{user_id} {role}`: change a member's role.
pub(super) async fn change_role(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let user_id: UserId = sub_id(call, "user_id")?;
    let body: RoleBody = call.body()?;
    let role = parse_role(&body.role)?;
    let member = call
        .auth
        .orgs()
        .change_role(&caller, user_id, &role, &call.client)
        .await?;
    let reply = Reply::json(StatusCode::OK, &MemberView::from(&member));
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

/// `GET /orgs/{org_id}/invitations`: the pending ones.
pub(super) async fn pending_invitations(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let pending = call.auth.orgs().pending_invitations(&caller).await?;
    let items: Vec<InvitationView> = pending
        .iter()
        .map(|i| InvitationView::new(i, true))
        .collect();
    Ok(Reply::json(StatusCode::OK, &items))
}

/// `POST /orgs/{org_id}/invitations {email, role}`.
pub(super) async fn invite(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let body: InviteBody = call.body()?;
    let role = parse_role(&body.role)?;
    let invitation = call
        .auth
        .orgs()
        .invite(&caller, &body.email, &role, &call.client)
        .await?;
    Ok(Reply::json(
        StatusCode::CREATED,
        &InvitationView::new(&invitation, false),
    ))
}

/// `DELETE /orgs/{org_id}/invitations/{id}`: revokes a pending invitation.
pub(super) async fn revoke_invitation(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let id: InvitationId = sub_id(call, "invitation_id")?;
    call.auth
        .orgs()
        .revoke_invitation(&caller, id, &call.client)
        .await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /orgs/{org_id}/transfer {user_id}`: an owner hands ownership to another member.
pub(super) async fn transfer(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let body: TransferBody = call.body()?;
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
            &TransferReply {
                from: (&from).into(),
                to: (&to).into(),
            },
        ),
    )
    .await
}

/// `POST /invitations/accept {token}`: answers `{org_id, role}`; the organization becomes the
/// session's active one.
pub(super) async fn accept_invitation(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let session_id = principal.require_session()?;
    let body: TokenBody = call.body()?;
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
        Reply::json(StatusCode::OK, &AcceptReply::from(&membership)),
    )
    .await
}

pub(super) async fn set_active_org(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let session_id = principal.require_session()?;
    let body: ActiveOrgBody = call.body()?;
    let Some(org_id) = body.org_id else {
        call.auth
            .sessions()
            .set_active_org(session_id, None)
            .await?;
        return rotated(
            call,
            Reply::json(
                StatusCode::OK,
                &ActiveOrgReply {
                    org: None,
                    role: None,
                    permissions: Vec::new(),
                },
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
    let permissions = call
        .auth
        .roles()
        .permissions(&membership.role)
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    rotated(
        call,
        Reply::json(
            StatusCode::OK,
            &ActiveOrgReply {
                org: Some(OrgView::from(&org)),
                role: Some(membership.role.as_str().to_owned()),
                permissions,
            },
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_roles_are_invalid_requests() {
        assert_eq!(parse_role("admin").unwrap(), Role::ADMIN);
        assert_eq!(
            parse_role("Super User").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
