//! Organizations, memberships, roles and invitations, without HTTP: the flows behind the
//! contract's `/orgs…` and `/invitations/accept` routes.
//!
//! [`Organizations`] decides who may do what in an organization and keeps the rules of the
//! contract:
//! - The creator of an organization is its owner. An organization always keeps an owner:
//!   leaving, demotion and removal of the last one answer `last_owner`, also when two owners
//!   demote or remove each other at once (the store decides that atomically).
//! - A caller acts in an organization with the permissions their membership *there* grants
//!   ([`Organizations::caller`]): the organization in the path, not necessarily the session's
//!   active one. A non-member, and an id that names no organization, are both `forbidden`.
//! - `members:manage` lets admins and owners invite, change roles and remove; nobody grants or
//!   touches a role above their own (roles compare by what they grant, so an app's own roles
//!   rank without a hierarchy to declare), and only an owner grants, removes or demotes an owner.
//! - Invitations carry a 256-bit token, stored hashed, single use, expiring after
//!   [`OrgsConfig::invitation_ttl`] (7 days). The mailed link is
//!   `APP_ORIGIN` + [`OrgsConfig::accept_invitation_path`] + `?token=…`, a page of the app that
//!   posts the token to `/invitations/accept`. Only a signed-in user whose *verified* email is
//!   the invited one accepts.
//! - A change of membership takes effect at once: the member's cached sessions are dropped on
//!   this instance and, through the change feed, on the others (within the session cache's
//!   TTL even if a notification were lost), a removed member's
//!   sessions lose the organization, and their API tokens there are revoked for good.
//! - Every creation, invitation, acceptance, revocation, role change, removal, departure and
//!   ownership transfer is an audit event (`org.created`, `member.invited`,
//!   `invitation.accepted`, `invitation.revoked`, `member.role_changed`, `member.removed`,
//!   `member.left`, `org.ownership_transferred`, `org.deleted`).

use serde_json::json;
use time::Duration;

use crate::accounts::ClientInfo;
use crate::audit;
use crate::mail::MailTemplates;
use crate::principal::{Credential, Principal};
use crate::secret::generate_token;
use crate::store::Conflict;
use crate::tokens::Change;
use crate::{
    AuditEvent, AuditKind, Auth, AuthError, AuthStore, Email, ErrorCode, Invitation, InvitationId,
    Member, Membership, OrgId, Organization, Role, SessionId, StoreError, TokenHash, UserId,
};

/// The longest organization name, in characters.
pub const MAX_ORG_NAME_CHARS: usize = 100;
/// The longest slug made from a name, before a uniqueness suffix.
const MAX_SLUG_LEN: usize = 48;
/// How often a taken slug is retried with a random suffix.
const SLUG_ATTEMPTS: usize = 6;
/// How many times a role change or removal is judged again when the member's role changed
/// between the read and the write; past that, 409 `conflict`.
const ROLE_RACE_ATTEMPTS: usize = 3;

/// The permission to see an organization's members.
pub const MEMBERS_READ: &str = "members:read";
/// The permission to invite, change roles, remove members and manage invitations.
pub const MEMBERS_MANAGE: &str = "members:manage";
/// The permission to delete an organization.
pub const ORG_DELETE: &str = "org:delete";

/// Settings of the organization flows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrgsConfig {
    /// How long an invitation may be accepted (default 7 days).
    pub invitation_ttl: Duration,
    /// The path of the invitation link, on the app's origin; `?token=…` is appended (default
    /// `/accept-invitation`: a page of the app that posts the token to `/invitations/accept`,
    /// and sends a visitor who is not signed in to sign in or sign up first).
    pub accept_invitation_path: String,
    /// The role a former owner keeps after transferring ownership (default `admin`).
    pub former_owner_role: Role,
}

impl Default for OrgsConfig {
    fn default() -> Self {
        Self {
            invitation_ttl: Duration::days(7),
            accept_invitation_path: "/accept-invitation".to_owned(),
            former_owner_role: Role::ADMIN,
        }
    }
}

/// A caller acting in one organization: their membership there, and the principal with that
/// organization and role (so its permissions are what the membership grants, intersected with
/// a token's scopes).
#[derive(Debug, Clone)]
pub struct OrgCaller {
    /// The principal, scoped to the organization.
    pub principal: Principal,
    /// The caller's membership there, as of this request.
    pub membership: Membership,
}

impl OrgCaller {
    /// The organization.
    #[must_use]
    pub const fn org_id(&self) -> OrgId {
        self.membership.org_id
    }

    /// The caller's user id.
    #[must_use]
    pub const fn user_id(&self) -> UserId {
        self.membership.user_id
    }

    /// The caller's role there.
    #[must_use]
    pub const fn role(&self) -> &Role {
        &self.membership.role
    }
}

/// What [`Auth`] keeps for the organization flows.
#[derive(Debug, Clone)]
pub(crate) struct OrgsState {
    pub(crate) config: OrgsConfig,
    pub(crate) templates: MailTemplates,
}

/// The organization flows of an [`Auth`] ([`Auth::orgs`]): they use its store, clock, roles,
/// mailer and session cache, and announce every membership change on its change feed, so
/// that cached sessions and tokens of every instance see it.
#[derive(Debug, Clone, Copy)]
pub struct Organizations<'a> {
    auth: &'a Auth,
}

fn forbidden(detail: &str) -> AuthError {
    AuthError::new(ErrorCode::Forbidden).with_detail(detail)
}

fn invalid(detail: &str) -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest).with_detail(detail)
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

/// Six random lowercase letters or digits, to make a taken slug unique.
fn slug_suffix() -> String {
    generate_token()
        .expose()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase()
}

impl<'a> Organizations<'a> {
    pub(crate) const fn new(auth: &'a Auth) -> Self {
        Self { auth }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &'a OrgsConfig {
        &self.auth.inner.orgs.config
    }

    fn store(&self) -> &'a dyn AuthStore {
        &**self.auth.store()
    }

    fn now(&self) -> time::OffsetDateTime {
        self.auth.clock().now()
    }

    /// Tells the caches of every instance (this one at once) that `user_id`'s membership in
    /// `org_id` changed: cached sessions re-read it, tokens take the new role.
    async fn changed(&self, org_id: OrgId, user_id: UserId) {
        self.auth
            .publish(Change::MembershipChanged { org_id, user_id })
            .await;
    }

    /// Creates an organization named `name` (trimmed; 1 to 100 characters, no control
    /// characters) with `principal`'s user as owner, under a unique slug made from the name
    /// (a random suffix when it is taken). When `principal` is a browser session, the new
    /// organization becomes its active one.
    ///
    /// # Errors
    /// `invalid_request` for a bad name; store errors.
    #[tracing::instrument(name = "keystead.org.create", skip_all)]
    pub async fn create(
        &self,
        principal: &Principal,
        name: &str,
        client: &ClientInfo,
    ) -> Result<(Organization, Membership), AuthError> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_ORG_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(invalid(&format!(
                "The name must be 1 to {MAX_ORG_NAME_CHARS} characters, without control characters."
            )));
        }
        let base = slugify(name);
        let now = self.now();
        let mut attempt = 0;
        let (org, membership) = loop {
            let slug = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{}", slug_suffix())
            };
            let org = Organization {
                id: OrgId::new(),
                name: name.to_owned(),
                slug,
                created_at: now,
                external_id: None,
                mfa_required: false,
            };
            match self
                .store()
                .create_organization(&org, principal.user.id)
                .await
            {
                Ok(membership) => break (org, membership),
                Err(StoreError::Conflict(Conflict::OrgSlug)) if attempt + 1 < SLUG_ATTEMPTS => {
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        };
        if let Some(session_id) = principal.session_id() {
            self.auth
                .sessions()
                .set_active_org(session_id, Some(org.id))
                .await?;
        }
        // A new membership, and a new active organization for the session: other instances
        // that cached the session must read it again (the session keeps its token).
        self.changed(org.id, principal.user.id).await;
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(principal.user.id),
                user_id: Some(principal.user.id),
                org_id: Some(org.id),
                data: json!({ "slug": org.slug, "name": org.name }),
                ..client.audit_event(AuditKind::OrgCreated, self.now())
            },
        )
        .await;
        Ok((org, membership))
    }

    /// The caller as a member of `org_id`, with the permissions their role there grants.
    ///
    /// # Errors
    /// `forbidden` when the user is not a member (an unknown organization alike), or for an
    /// API token issued for another organization; store errors.
    pub async fn caller(
        &self,
        principal: &Principal,
        org_id: OrgId,
    ) -> Result<OrgCaller, AuthError> {
        let not_a_member = || forbidden("You are not a member of that organization.");
        if matches!(principal.credential, Credential::ApiToken { .. })
            && principal.org_id() != Some(org_id)
        {
            return Err(not_a_member());
        }
        let access = self
            .store()
            .org_access(org_id, principal.user.id)
            .await?
            .ok_or_else(not_a_member)?;
        let membership = access.membership;
        let mut caller = Principal::new(
            principal.user.clone(),
            principal.credential.clone(),
            Some((org_id, membership.role.clone())),
            self.auth.roles(),
        );
        // The organization's MFA policy: a member without a second factor can do nothing
        // there (403 `mfa_required`) until they set one up.
        if access.mfa_required && !access.second_factor {
            caller = caller.blocked_by_org_mfa_policy();
        }
        Ok(OrgCaller {
            principal: caller,
            membership,
        })
    }

    /// The organization, as the caller sees it.
    ///
    /// # Errors
    /// `not_found` if it was deleted meanwhile; store errors.
    pub async fn organization(&self, caller: &OrgCaller) -> Result<Organization, AuthError> {
        self.store()
            .organization(caller.org_id())
            .await?
            .ok_or(AuthError::new(ErrorCode::NotFound))
    }

    /// The organization's members, oldest first. Needs `members:read`.
    ///
    /// # Errors
    /// `forbidden` without the permission; store errors.
    pub async fn members(&self, caller: &OrgCaller) -> Result<Vec<Member>, AuthError> {
        caller.principal.require(MEMBERS_READ)?;
        Ok(self.store().members(caller.org_id()).await?)
    }

    /// `Ok` when the caller may grant or take away `role`: only an owner for the owner role,
    /// and never a role that grants more than the caller has.
    fn may_handle_role(&self, caller: &OrgCaller, role: &Role) -> Result<(), AuthError> {
        if role.is_owner() && !caller.role().is_owner() {
            return Err(forbidden(
                "Only an owner may grant, remove or demote an owner.",
            ));
        }
        caller
            .principal
            .require_role(role, self.auth.roles())
            .map_err(|_| forbidden("That role grants more than your own."))
    }

    /// `role`, when the app knows it.
    fn known_role(&self, role: &Role) -> Result<(), AuthError> {
        if self.auth.roles().knows_role(role) {
            Ok(())
        } else {
            Err(invalid(&format!("Unknown role {:?}.", role.as_str())))
        }
    }

    /// Invites `email` into the caller's organization as `role` and mails them a link. Needs
    /// `members:manage`; only an owner invites an owner, and nobody invites to a role above
    /// their own.
    ///
    /// # Errors
    /// `forbidden` as above; `invalid_request` for a malformed email or an unknown role;
    /// `conflict` when the address belongs to a member already; store errors. A mailer
    /// failure is logged, not returned (the invitation exists; it can be revoked and sent
    /// again).
    #[tracing::instrument(name = "keystead.org.invite", skip_all)]
    pub async fn invite(
        &self,
        caller: &OrgCaller,
        email: &str,
        role: &Role,
        client: &ClientInfo,
    ) -> Result<Invitation, AuthError> {
        caller.principal.require(MEMBERS_MANAGE)?;
        let email = Email::parse(email).map_err(|_| invalid("The email address is invalid."))?;
        self.known_role(role)?;
        self.may_handle_role(caller, role)?;
        let org = self.organization(caller).await?;
        if let Some(user) = self.store().user_by_email(&email).await?
            && self.store().membership(org.id, user.id).await?.is_some()
        {
            return Err(AuthError::new(ErrorCode::Conflict)
                .with_detail("That address belongs to a member already."));
        }
        let now = self.now();
        let token = generate_token();
        let invitation = Invitation {
            id: InvitationId::new(),
            org_id: org.id,
            email,
            role: role.clone(),
            token_hash: TokenHash::of(token.expose()),
            invited_by: caller.user_id(),
            created_at: now,
            expires_at: now + self.config().invitation_ttl,
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
        };
        self.store().create_invitation(&invitation).await?;
        let path = &self.config().accept_invitation_path;
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = self
            .auth
            .origin()
            .join(&format!("{path}{separator}token={}", token.expose()));
        let message = self.auth.inner.orgs.templates.organization_invitation(
            invitation.email.clone(),
            &org.name,
            &url,
            self.config().invitation_ttl,
        );
        if let Err(err) = self.auth.mailer().send(&message).await {
            tracing::error!(error = %err, invitation_id = %invitation.id, "invitation mail not sent");
        }
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(caller.user_id()),
                org_id: Some(org.id),
                data: json!({
                    "invitation_id": invitation.id.to_string(),
                    "email": invitation.email.as_str(),
                    "role": role.as_str(),
                }),
                ..client.audit_event(AuditKind::MemberInvited, self.now())
            },
        )
        .await;
        Ok(invitation)
    }

    /// The organization's pending invitations, newest first. Needs `members:manage`.
    ///
    /// # Errors
    /// `forbidden` without the permission; store errors.
    pub async fn pending_invitations(
        &self,
        caller: &OrgCaller,
    ) -> Result<Vec<Invitation>, AuthError> {
        caller.principal.require(MEMBERS_MANAGE)?;
        Ok(self
            .store()
            .pending_invitations(caller.org_id(), self.now())
            .await?)
    }

    /// Revokes a pending invitation of the organization: its link stops working. Needs
    /// `members:manage` and a role that could have made the invitation.
    ///
    /// # Errors
    /// `forbidden` as above; `not_found` for an invitation that is not pending in this
    /// organization; store errors.
    pub async fn revoke_invitation(
        &self,
        caller: &OrgCaller,
        id: InvitationId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        caller.principal.require(MEMBERS_MANAGE)?;
        let now = self.now();
        let invitation = self
            .store()
            .invitation(id)
            .await?
            .filter(|i| i.org_id == caller.org_id() && i.is_pending(now))
            .ok_or(AuthError::new(ErrorCode::NotFound))?;
        self.may_handle_role(caller, &invitation.role)?;
        self.store()
            .revoke_invitation(caller.org_id(), id, now)
            .await?;
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(caller.user_id()),
                org_id: Some(caller.org_id()),
                data: json!({
                    "invitation_id": id.to_string(),
                    "email": invitation.email.as_str(),
                    "role": invitation.role.as_str(),
                }),
                ..client.audit_event(AuditKind::InvitationRevoked, self.now())
            },
        )
        .await;
        Ok(())
    }

    /// Accepts an invitation with its mailed token, for the signed-in `user_id`, whose
    /// verified email must be the invited one. The organization becomes the active one of
    /// `session`, when given.
    ///
    /// # Errors
    /// `invalid_link` for an unknown, used, revoked or expired token (also for the losers of
    /// concurrent accepts); `email_not_verified` when the user's email is the invited one but
    /// not verified; `forbidden` when it is another; `conflict` when the user is a member
    /// already; store errors.
    #[tracing::instrument(name = "keystead.org.accept_invitation", skip_all)]
    pub async fn accept_invitation(
        &self,
        user_id: UserId,
        session: Option<SessionId>,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Membership, AuthError> {
        let now = self.now();
        let hash = TokenHash::of(token);
        let invalid_link = || AuthError::new(ErrorCode::InvalidLink);
        let invitation = self
            .store()
            .invitation_by_token_hash(&hash)
            .await?
            .filter(|i| i.is_pending(now))
            .ok_or_else(invalid_link)?;
        // Read the user from the store, not a cache: the verified address decides.
        let user = self
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
        if user.email != invitation.email {
            return Err(forbidden(
                "This invitation was sent to another email address.",
            ));
        }
        if !user.email_verified() {
            return Err(AuthError::new(ErrorCode::EmailNotVerified)
                .with_detail("Verify your email address, then accept the invitation."));
        }
        if self
            .store()
            .membership(invitation.org_id, user.id)
            .await?
            .is_some()
        {
            return Err(AuthError::new(ErrorCode::Conflict)
                .with_detail("You are a member of this organization already."));
        }
        // Tokens left from an earlier membership never come back to life, on any instance.
        let revoked = self
            .store()
            .revoke_api_tokens_for_member(invitation.org_id, user.id, now)
            .await?;
        for id in revoked {
            self.auth.publish(Change::TokenRevoked { id }).await;
        }
        let membership = match self.store().accept_invitation(&hash, user.id, now).await {
            Ok(membership) => membership,
            Err(StoreError::NotFound) => return Err(invalid_link()),
            Err(StoreError::Conflict(Conflict::Membership)) => {
                return Err(AuthError::new(ErrorCode::Conflict)
                    .with_detail("You are a member of this organization already."));
            }
            Err(err) => return Err(err.into()),
        };
        self.changed(membership.org_id, user.id).await;
        if let Some(session) = session {
            self.auth
                .sessions()
                .set_active_org(session, Some(membership.org_id))
                .await?;
        }
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(user.id),
                user_id: Some(user.id),
                org_id: Some(membership.org_id),
                data: json!({
                    "invitation_id": invitation.id.to_string(),
                    "role": membership.role.as_str(),
                    "invited_by": invitation.invited_by.to_string(),
                }),
                ..client.audit_event(AuditKind::InvitationAccepted, self.now())
            },
        )
        .await;
        Ok(membership)
    }

    /// The member `user_id` of the caller's organization.
    async fn member(&self, caller: &OrgCaller, user_id: UserId) -> Result<Membership, AuthError> {
        self.store()
            .membership(caller.org_id(), user_id)
            .await?
            .ok_or_else(|| AuthError::new(ErrorCode::NotFound).with_detail("No such member."))
    }

    /// Changes the role of member `user_id` to `role`. Needs `members:manage`; nobody grants
    /// or takes away a role above their own, and only an owner grants, removes or demotes an
    /// owner (themselves included). Returns the member with the new role.
    ///
    /// # Errors
    /// `forbidden` as above; `invalid_request` for an unknown role; `not_found` for a
    /// non-member; `last_owner` when it would leave the organization without an owner (also
    /// when two owners demote each other at once); store errors.
    pub async fn change_role(
        &self,
        caller: &OrgCaller,
        user_id: UserId,
        role: &Role,
        client: &ClientInfo,
    ) -> Result<Member, AuthError> {
        caller.principal.require(MEMBERS_MANAGE)?;
        self.known_role(role)?;
        let current = self.member(caller, user_id).await?;
        self.may_handle_role(caller, &current.role)?;
        self.may_handle_role(caller, role)?;
        // The decision on the member's role holds only for the role it was made on: the store
        // writes the change only while that is still the role (under the organization's
        // lock), and a role changed meanwhile is judged again.
        let mut judged = current.role;
        let mut attempts = 0;
        let membership = loop {
            match self
                .store()
                .change_role_if(caller.org_id(), user_id, &judged, role)
                .await
            {
                Err(StoreError::RoleChanged { current }) if attempts < ROLE_RACE_ATTEMPTS => {
                    attempts += 1;
                    self.may_handle_role(caller, &current)?;
                    judged = current;
                }
                other => break other?,
            }
        };
        self.changed(caller.org_id(), user_id).await;
        if judged != membership.role {
            audit::record(
                self.store(),
                &AuditEvent {
                    actor_id: Some(caller.user_id()),
                    user_id: Some(user_id),
                    org_id: Some(caller.org_id()),
                    data: json!({ "from": judged.as_str(), "to": membership.role.as_str() }),
                    ..client.audit_event(AuditKind::MemberRoleChanged, self.now())
                },
            )
            .await;
        }
        let user = self
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::NotFound))?;
        let second_factor = self.store().mfa_status(user_id).await?.has_second_factor();
        Ok(Member {
            membership,
            user,
            second_factor,
        })
    }

    /// Removes member `user_id` from the caller's organization, or lets the caller leave it
    /// (`user_id` is the caller). Anyone may leave; removing someone else needs
    /// `members:manage` and a role at least theirs, and only an owner removes an owner.
    ///
    /// From then on the member's sessions no longer carry the organization and their API
    /// tokens for it are revoked.
    ///
    /// # Errors
    /// `forbidden` as above; `not_found` for a non-member; `last_owner` for the last owner
    /// (under concurrency too); store errors.
    pub async fn remove_member(
        &self,
        caller: &OrgCaller,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let leaving = user_id == caller.user_id();
        let org_id = caller.org_id();
        let removed_role = if leaving {
            self.store().remove_member(org_id, user_id).await?;
            caller.membership.role.clone()
        } else {
            caller.principal.require(MEMBERS_MANAGE)?;
            // As in `change_role`: the removal is written only while the member still has the
            // role the decision was made on.
            let mut judged = self.member(caller, user_id).await?.role;
            self.may_handle_role(caller, &judged)?;
            let mut attempts = 0;
            loop {
                match self
                    .store()
                    .remove_member_if(org_id, user_id, &judged)
                    .await
                {
                    Err(StoreError::RoleChanged { current }) if attempts < ROLE_RACE_ATTEMPTS => {
                        attempts += 1;
                        self.may_handle_role(caller, &current)?;
                        judged = current;
                    }
                    other => break other?,
                }
            }
            judged
        };
        self.after_removal(org_id, user_id).await;
        let (kind, data) = if leaving {
            (
                AuditKind::MemberLeft,
                json!({ "role": removed_role.as_str() }),
            )
        } else {
            (
                AuditKind::MemberRemoved,
                json!({ "role": removed_role.as_str() }),
            )
        };
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(caller.user_id()),
                user_id: Some(user_id),
                org_id: Some(org_id),
                data,
                ..client.audit_event(kind, self.now())
            },
        )
        .await;
        Ok(())
    }

    /// What follows a removal: sessions lose the organization, cached sessions are dropped,
    /// API tokens are revoked. Failures are logged: the membership is gone either way, so the
    /// member has no access there (sessions and tokens take the role from the membership).
    async fn after_removal(&self, org_id: OrgId, user_id: UserId) {
        if let Err(err) = self
            .store()
            .clear_active_org_for_member(org_id, user_id)
            .await
        {
            tracing::error!(error = %err, %org_id, %user_id, "could not clear the active org");
        }
        self.changed(org_id, user_id).await;
        let now = self.now();
        match self
            .store()
            .revoke_api_tokens_for_member(org_id, user_id, now)
            .await
        {
            Ok(revoked) => {
                for id in revoked {
                    self.auth.publish(Change::TokenRevoked { id }).await;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, %org_id, %user_id, "could not revoke the member's API tokens");
            }
        }
    }

    /// Makes member `to` an owner and the caller (an owner) [`OrgsConfig::former_owner_role`],
    /// in one step. Returns the caller's and the new owner's memberships.
    ///
    /// # Errors
    /// `forbidden` unless the caller is an owner; `invalid_request` for the caller's own id;
    /// `not_found` when `to` is not a member; `last_owner` when the caller stopped being an
    /// owner meanwhile; store errors.
    pub async fn transfer_ownership(
        &self,
        caller: &OrgCaller,
        to: UserId,
        client: &ClientInfo,
    ) -> Result<(Membership, Membership), AuthError> {
        self.may_handle_role(caller, &Role::OWNER)?;
        self.auth.require_recent_auth(&caller.principal)?;
        if to == caller.user_id() {
            return Err(invalid("You own the organization already."));
        }
        let target = self.member(caller, to).await?;
        let org_id = caller.org_id();
        let becomes = &self.config().former_owner_role;
        self.store()
            .transfer_ownership(org_id, caller.user_id(), to, becomes)
            .await?;
        self.changed(org_id, caller.user_id()).await;
        self.changed(org_id, to).await;
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(caller.user_id()),
                user_id: Some(to),
                org_id: Some(org_id),
                data: json!({
                    "from": caller.user_id().to_string(),
                    "to": to.to_string(),
                    "to_previous_role": target.role.as_str(),
                    "from_becomes": becomes.as_str(),
                }),
                ..client.audit_event(AuditKind::OrgOwnershipTransferred, self.now())
            },
        )
        .await;
        let from = self.member(caller, caller.user_id()).await?;
        let to = self.member(caller, to).await?;
        Ok((from, to))
    }

    /// Sets whether the organization requires a second factor of its members (needs
    /// `members:manage` and a recent authentication). Turning it on needs a caller with a
    /// second factor (they would lock themselves out otherwise). Every member's sessions and
    /// tokens see the change at once.
    ///
    /// # Errors
    /// `forbidden` without the permission or membership; `mfa_required` when turning it on
    /// without a factor; `reauthentication_required` for an old session authentication; store
    /// errors.
    pub async fn set_mfa_policy(
        &self,
        principal: &Principal,
        org_id: OrgId,
        required: bool,
        client: &ClientInfo,
    ) -> Result<Organization, AuthError> {
        let caller = self.caller(principal, org_id).await?;
        caller.principal.require(MEMBERS_MANAGE)?;
        self.auth.require_recent_auth(principal)?;
        if required
            && !self
                .store()
                .mfa_status(caller.user_id())
                .await?
                .has_second_factor()
        {
            return Err(AuthError::new(ErrorCode::MfaRequired).with_detail(
                "Set up a second factor yourself before requiring one of the members.",
            ));
        }
        let org = self.store().set_org_mfa_required(org_id, required).await?;
        for member in self.store().members(org_id).await? {
            self.changed(org_id, member.user.id).await;
        }
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(caller.user_id()),
                org_id: Some(org_id),
                data: json!({ "mfa_required": required }),
                ..client.audit_event(AuditKind::OrgMfaPolicyChanged, self.now())
            },
        )
        .await;
        Ok(org)
    }

    /// Deletes the caller's organization with its memberships, invitations and API tokens.
    /// Needs `org:delete` (owners, by default) and a recent authentication.
    ///
    /// # Errors
    /// `forbidden` without the permission; `reauthentication_required`; store errors.
    pub async fn delete(&self, caller: &OrgCaller, client: &ClientInfo) -> Result<(), AuthError> {
        caller.principal.require(ORG_DELETE)?;
        self.auth.require_recent_auth(&caller.principal)?;
        let org_id = caller.org_id();
        let members = self.store().members(org_id).await?;
        let org = self.organization(caller).await?;
        self.store().delete_organization(org_id).await?;
        for member in &members {
            self.changed(org_id, member.user.id).await;
        }
        audit::record(
            self.store(),
            &AuditEvent {
                actor_id: Some(caller.user_id()),
                org_id: Some(org_id),
                data: json!({ "slug": org.slug, "members": members.len() }),
                ..client.audit_event(AuditKind::OrgDeleted, self.now())
            },
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Acme Inc."), "acme-inc");
        assert_eq!(slugify("  --Ünïcode Ltd--  "), "n-code-ltd");
        assert_eq!(slugify("日本"), "org");
        assert!(slugify(&"a".repeat(500)).len() <= MAX_SLUG_LEN);
        let suffix = slug_suffix();
        assert_eq!(suffix.len(), 6);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn invitations_last_a_week_by_default() {
        let config = OrgsConfig::default();
        assert_eq!(config.invitation_ttl, Duration::days(7));
        assert_eq!(config.accept_invitation_path, "/accept-invitation");
        assert_eq!(config.former_owner_role, Role::ADMIN);
    }
}
