//! The request and reply bodies of the library's routes, as types: what the handlers parse and
//! answer, and what the OpenAPI document describes (one definition for both).
//!
//! Times are RFC 3339 in UTC; ids are UUIDs in their hyphenated form.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::{
    ApiTokenRecord, ExternalAccount, Invitation, Member, Membership, Organization, Session, User,
};

/// RFC 3339 in UTC.
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

// ---- request bodies ------------------------------------------------------------------------

/// `POST /auth/sign-up`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignUpBody {
    /// The address; normalized (trimmed, lower-cased domain) before use.
    pub(super) email: String,
    /// At least 8 characters, not a common password.
    pub(super) password: String,
    /// A display name.
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// `POST /auth/sign-in`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignInBody {
    /// The address.
    pub(super) email: String,
    /// The password.
    pub(super) password: String,
}

/// A body that carries a mailed token (`POST /auth/verify-email`, `POST /invitations/accept`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenBody {
    /// The token from the link.
    pub(super) token: String,
}

/// `POST /auth/password-reset`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailBody {
    /// The address to send the link to, if it has an account.
    pub(super) email: String,
}

/// `POST /auth/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirmBody {
    /// The token from the link.
    pub(super) token: String,
    /// The new password.
    pub(super) password: String,
}

/// `POST /auth/change-password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordBody {
    /// The password now.
    pub(super) current_password: String,
    /// The new password.
    pub(super) new_password: String,
}

/// `POST /orgs`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrgBody {
    /// The organization's name.
    pub(super) name: String,
}

/// `POST /auth/active-org`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActiveOrgBody {
    /// An organization of the user's, or `null` for none.
    #[serde(default)]
    #[schema(format = Uuid)]
    pub(super) org_id: Option<String>,
}

/// `POST /orgs/{org_id}/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteBody {
    /// Who is invited.
    pub(super) email: String,
    /// The role they get: `owner`, `admin`, `member` or a role of the app's.
    pub(super) role: String,
}

/// `PATCH /orgs/{org_id}/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleBody {
    /// The new role.
    pub(super) role: String,
}

/// `POST /orgs/{org_id}/transfer`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferBody {
    /// The member who becomes the owner.
    #[schema(format = Uuid)]
    pub(super) user_id: String,
}

/// `POST /api/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTokenBody {
    /// A name for people (`CI deploys`).
    pub(super) name: String,
    /// The permissions the token carries (`read:projects`); never more than the owner's role.
    pub(super) scopes: Vec<String>,
    /// Days until it expires (the configured default when absent).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100_000)]
    pub(super) expires_in_days: Option<Value>,
}

/// A field that is present, whatever its JSON value (`null` included): `null` is refused as
/// any other non-integer, absent means the default.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

// ---- replies ------------------------------------------------------------------------------

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[schema(format = Uuid)]
    id: String,
    email: String,
    name: Option<String>,
    email_verified: bool,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            name: user.name.clone(),
            email_verified: user.email_verified_at.is_some(),
            created_at: rfc3339(user.created_at),
        }
    }
}

/// A session: its id and when it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// When the user last proved who they are in this session (sign-in or
    /// re-authentication); step-up routes need it recent.
    #[schema(format = DateTime)]
    authenticated_at: String,
}

impl SessionView {
    pub(super) fn new(
        id: crate::SessionId,
        expires_at: OffsetDateTime,
        authenticated_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: id.to_string(),
            expires_at: rfc3339(expires_at),
            authenticated_at: rfc3339(authenticated_at),
        }
    }
}

impl From<&Session> for SessionView {
    fn from(session: &Session) -> Self {
        Self::new(session.id, session.expires_at, session.authenticated_at)
    }
}

/// `{user}`: sign-up, a verified address.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserReply {
    user: UserView,
}

impl UserReply {
    pub(super) fn new(user: &User) -> Self {
        Self { user: user.into() }
    }
}

/// `{user, session}`: sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInReply {
    user: UserView,
    session: SessionView,
}

impl SignInReply {
    pub(super) fn new(user: &User, session: &Session) -> Self {
        Self {
            user: user.into(),
            session: session.into(),
        }
    }
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    slug: String,
}

impl From<&Organization> for OrgView {
    fn from(org: &Organization) -> Self {
        Self {
            id: org.id.to_string(),
            name: org.name.clone(),
            slug: org.slug.clone(),
        }
    }
}

/// `GET /auth/session`: who is calling, with what.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentSession {
    pub(super) user: UserView,
    /// `null` for an API token.
    pub(super) session: Option<SessionView>,
    /// The active organization (a token's organization), if any.
    pub(super) org: Option<OrgView>,
    /// The role there.
    pub(super) role: Option<String>,
    /// What the role (or the token's scopes) grants there.
    pub(super) permissions: Vec<String>,
    /// The user's second factors, and whether the active organization's MFA policy holds the
    /// caller back (every organization route answers 403 `mfa_required` until a factor is
    /// set up).
    pub(super) mfa: MfaSummary,
}

/// The second-factor state of the caller, in `GET /auth/session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaSummary {
    /// The user has a second factor (TOTP or a passkey).
    pub(super) enabled: bool,
    /// The active organization requires one and the user has none.
    pub(super) org_blocked: bool,
}

/// One of the user's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionListItem {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_seen_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    user_agent: Option<String>,
    /// Whether it is the session of this request.
    current: bool,
}

impl SessionListItem {
    pub(super) fn new(session: &Session, current: crate::SessionId) -> Self {
        Self {
            id: session.id.to_string(),
            created_at: rfc3339(session.created_at),
            last_seen_at: rfc3339(session.last_seen_at),
            expires_at: rfc3339(session.expires_at),
            user_agent: session.user_agent.clone(),
            current: session.id == current,
        }
    }
}

/// `{}`: done, nothing to tell.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {}

/// `POST /auth/active-org`: the session's organization now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveOrgReply {
    pub(super) org: Option<OrgView>,
    pub(super) role: Option<String>,
    pub(super) permissions: Vec<String>,
}

/// An organization of the user's and their role there.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgWithRole {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    slug: String,
    role: String,
}

impl OrgWithRole {
    pub(super) fn new(org: &Organization, role: &crate::Role) -> Self {
        Self {
            id: org.id.to_string(),
            name: org.name.clone(),
            slug: org.slug.clone(),
            role: role.as_str().to_owned(),
        }
    }
}

/// A member of an organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    #[schema(format = Uuid)]
    user_id: String,
    email: String,
    name: Option<String>,
    role: String,
    #[schema(format = DateTime)]
    joined_at: String,
    /// Whether the member has a second factor (TOTP or a passkey).
    mfa_enabled: bool,
}

impl From<&Member> for MemberView {
    fn from(member: &Member) -> Self {
        Self {
            user_id: member.user.id.to_string(),
            email: member.user.email.as_str().to_owned(),
            name: member.user.name.clone(),
            role: member.membership.role.as_str().to_owned(),
            joined_at: rfc3339(member.membership.joined_at),
            mfa_enabled: member.second_factor,
        }
    }
}

/// An invitation; the list of pending ones also says who invited and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    #[schema(format = Uuid)]
    id: String,
    email: String,
    role: String,
    #[schema(format = DateTime)]
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    invited_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    created_at: Option<String>,
}

impl InvitationView {
    pub(super) fn new(invitation: &Invitation, full: bool) -> Self {
        Self {
            id: invitation.id.to_string(),
            email: invitation.email.as_str().to_owned(),
            role: invitation.role.as_str().to_owned(),
            expires_at: rfc3339(invitation.expires_at),
            invited_by: full.then(|| invitation.invited_by.to_string()),
            created_at: full.then(|| rfc3339(invitation.created_at)),
        }
    }
}

/// A membership without its user record.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    #[schema(format = Uuid)]
    org_id: String,
    #[schema(format = Uuid)]
    user_id: String,
    role: String,
}

impl From<&Membership> for MembershipView {
    fn from(membership: &Membership) -> Self {
        Self {
            org_id: membership.org_id.to_string(),
            user_id: membership.user_id.to_string(),
            role: membership.role.as_str().to_owned(),
        }
    }
}

/// `POST /orgs/{org_id}/transfer`: both memberships after the transfer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferReply {
    pub(super) from: MembershipView,
    pub(super) to: MembershipView,
}

/// `POST /invitations/accept`: the organization joined (now the active one) and the role.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptReply {
    #[schema(format = Uuid)]
    org_id: String,
    role: String,
}

impl From<&Membership> for AcceptReply {
    fn from(membership: &Membership) -> Self {
        Self {
            org_id: membership.org_id.to_string(),
            role: membership.role.as_str().to_owned(),
        }
    }
}

/// `POST /api/tokens`: the new token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenReply {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    /// `sk_live_…`: store it now, it is never shown again.
    token: String,
    scopes: Vec<String>,
    #[schema(format = DateTime)]
    expires_at: String,
}

impl NewTokenReply {
    pub(super) fn new(record: &ApiTokenRecord, token: String) -> Self {
        Self {
            id: record.id.to_string(),
            name: record.name.clone(),
            token,
            scopes: record
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            expires_at: rfc3339(record.expires_at),
        }
    }
}

/// An API token's record (never the token).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    scopes: Vec<String>,
    #[schema(format = Uuid)]
    created_by: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

impl From<&ApiTokenRecord> for TokenView {
    fn from(record: &ApiTokenRecord) -> Self {
        Self {
            id: record.id.to_string(),
            name: record.name.clone(),
            scopes: record
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            created_by: record.created_by.to_string(),
            created_at: rfc3339(record.created_at),
            expires_at: rfc3339(record.expires_at),
            last_used_at: record.last_used_at.map(rfc3339),
            revoked_at: record.revoked_at.map(rfc3339),
        }
    }
}

/// The public keys that verify API tokens (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    /// Ed25519 keys (`kty` `OKP`, `crv` `Ed25519`, `alg` `EdDSA`); HS256 keys are never
    /// published.
    #[schema(value_type = Vec<Object>)]
    pub(super) keys: Vec<Value>,
}

/// A provider identity linked to the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedAccount {
    provider: String,
    email: Option<String>,
    email_verified: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
}

impl From<&ExternalAccount> for LinkedAccount {
    fn from(account: &ExternalAccount) -> Self {
        Self {
            provider: account.provider.clone(),
            email: account.email.clone(),
            email_verified: account.email_verified,
            created_at: rfc3339(account.created_at),
            last_used_at: account.last_used_at.map(rfc3339),
        }
    }
}

/// A provider one can sign in with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    /// Its id in the paths (`/auth/oauth/{id}`).
    pub(super) id: String,
    /// Its name for people (`Google`).
    pub(super) name: String,
}

/// `GET /auth/providers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersReply {
    pub(super) providers: Vec<ProviderView>,
}

/// `GET /auth/accounts`: the user, whether they have a password, and their linked providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountsReply {
    pub(super) user: UserView,
    pub(super) has_password: bool,
    pub(super) accounts: Vec<LinkedAccount>,
}

/// An error (RFC 9457 problem details), `application/problem+json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:authkit:error:<code>`.
    #[serde(rename = "type")]
    pub(super) kind: String,
    /// A short human title of the code.
    pub(super) title: String,
    /// The HTTP status.
    pub(super) status: u16,
    /// The stable error code (`invalid_credentials`, `rate_limited`, …).
    pub(super) code: String,
    /// More, when there is a client-safe detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) detail: Option<String>,
    /// The scope an `insufficient_scope` refusal needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) scope: Option<String>,
}

/// One audit event as the audit routes show it. `ip` and `user_agent` are `null` in an
/// organization's log (they are the members' own); in the user's security events they are
/// those of the client that did it, when the user did it or nobody did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    at: String,
    /// `sign_in.failed`, `member.role_changed`, … (or an app's own kind).
    kind: String,
    /// Who did it, if known.
    #[schema(format = Uuid)]
    actor_id: Option<String>,
    /// Whom it concerns, if a user.
    #[schema(format = Uuid)]
    user_id: Option<String>,
    /// Which organization, if any.
    #[schema(format = Uuid)]
    org_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// What else the event keeps (never a secret).
    #[schema(value_type = Object)]
    data: Value,
}

impl From<&crate::AuditEvent> for AuditEventView {
    fn from(event: &crate::AuditEvent) -> Self {
        Self {
            id: event.id.to_string(),
            at: rfc3339(event.at),
            kind: event.kind.clone(),
            actor_id: event.actor_id.map(|u| u.to_string()),
            user_id: event.user_id.map(|u| u.to_string()),
            org_id: event.org_id.map(|o| o.to_string()),
            ip: event.ip.clone(),
            user_agent: event.user_agent.clone(),
            data: event.data.clone(),
        }
    }
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageReply {
    events: Vec<AuditEventView>,
    /// Pass it as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

impl From<&crate::audit::AuditPage> for AuditPageReply {
    fn from(page: &crate::audit::AuditPage) -> Self {
        Self {
            events: page.events.iter().map(AuditEventView::from).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }
}

// ---- second factors -----------------------------------------------------------------------

/// `{mfa_required, methods}`: a sign-in whose first factor passed; the session waits for the
/// second (the pending sign-in cookie is set).
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaChallengeReply {
    /// Always `true`.
    pub(super) mfa_required: bool,
    /// The factors the user can give: `totp`, `recovery_code`, `passkey`.
    pub(super) methods: Vec<String>,
}

/// `GET /auth/mfa`: the user's second factors.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatusReply {
    /// A confirmed TOTP authenticator.
    pub(super) totp: bool,
    /// How many passkeys.
    pub(super) passkeys: u32,
    /// Unused recovery codes.
    pub(super) recovery_codes_left: u32,
    /// The second factors usable at sign-in now.
    pub(super) methods: Vec<String>,
}

/// `POST /auth/mfa/totp`: a TOTP enrolment, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentReply {
    /// The secret in base32, for typing it into an authenticator app.
    pub(super) secret: String,
    /// The `otpauth://totp/…` URI.
    pub(super) otpauth_url: String,
    /// A QR code of the URI, as an SVG document.
    pub(super) qr_svg: String,
}

/// `{code}`: a TOTP code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeBody {
    /// The six digits the authenticator app shows.
    pub(super) code: String,
}

/// `{recovery_codes}`: a new set, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesReply {
    /// Ten single-use codes.
    pub(super) recovery_codes: Vec<String>,
}

/// `POST /auth/mfa/verify`: one second factor.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyBody {
    /// A TOTP code.
    #[serde(default)]
    pub(super) code: Option<String>,
    /// Or a recovery code.
    #[serde(default)]
    pub(super) recovery_code: Option<String>,
}

/// `POST /auth/reauthenticate`: the password, or a second factor.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReauthenticateBody {
    /// The account's password.
    #[serde(default)]
    pub(super) password: Option<String>,
    /// Or a TOTP code.
    #[serde(default)]
    pub(super) code: Option<String>,
    /// Or a recovery code.
    #[serde(default)]
    pub(super) recovery_code: Option<String>,
}

/// `{authenticated_at}`: the session's authentication time after a re-authentication.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReauthenticatedReply {
    #[schema(format = DateTime)]
    pub(super) authenticated_at: String,
}

impl ReauthenticatedReply {
    pub(super) fn new(at: OffsetDateTime) -> Self {
        Self {
            authenticated_at: rfc3339(at),
        }
    }
}

/// `PUT /orgs/{org_id}/mfa-policy`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaPolicyBody {
    /// Whether members must have a second factor to act in the organization.
    pub(super) required: bool,
}

/// The organization's MFA policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaPolicyReply {
    #[schema(format = Uuid)]
    pub(super) org_id: String,
    pub(super) mfa_required: bool,
}

// ---- passkeys -----------------------------------------------------------------------------

/// A body without fields (`{}`): the passkey ceremonies' options routes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmptyBody {}

/// `POST /auth/passkeys/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasskeyRegisterBody {
    /// The `ceremony` of the options.
    pub(super) ceremony: String,
    /// A name for people (`MacBook Touch ID`), 1 to 100 characters; `Passkey` when absent.
    #[serde(default)]
    pub(super) name: Option<String>,
    /// What `navigator.credentials.create()` answered, as JSON (binary fields base64url):
    /// `{id, rawId, type, response: {attestationObject, clientDataJSON}}`.
    #[schema(value_type = Object)]
    pub(super) credential: Value,
}

/// `PATCH /auth/passkeys/{passkey_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasskeyRenameBody {
    /// The new name, 1 to 100 characters.
    pub(super) name: String,
}

/// `POST /auth/passkeys/authenticate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasskeyAuthenticateBody {
    /// The `ceremony` of the options.
    pub(super) ceremony: String,
    /// What `navigator.credentials.get()` answered, as JSON (binary fields base64url):
    /// `{id, rawId, type, response: {authenticatorData, clientDataJSON, signature,
    /// userHandle}}`.
    #[schema(value_type = Object)]
    pub(super) credential: Value,
}

/// `{ceremony, options}`: a passkey ceremony begun.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyOptionsReply {
    /// Names the ceremony; send it back with the authenticator's answer (within 5 minutes,
    /// once).
    pub(super) ceremony: String,
    /// `{publicKey: {...}}`: the argument of `navigator.credentials.create()` or `.get()`
    /// (binary fields base64url).
    #[schema(value_type = Object)]
    pub(super) options: Value,
}

/// A passkey of the user's.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    /// Whether the authenticator may sync it (a multi-device passkey).
    backup_eligible: bool,
    /// Whether it was synced as of its last use.
    backup_state: bool,
}

impl From<&crate::model::Passkey> for PasskeyView {
    fn from(passkey: &crate::model::Passkey) -> Self {
        Self {
            id: passkey.id.to_string(),
            name: passkey.name.clone(),
            created_at: rfc3339(passkey.created_at),
            last_used_at: passkey.last_used_at.map(rfc3339),
            backup_eligible: passkey.backup_eligible,
            backup_state: passkey.backup_state,
        }
    }
}

/// `POST /auth/passkeys/authenticate`: a sign-in (`{user, session}`, with the session
/// cookie) or a re-authentication of the session's user (`{authenticated_at}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PasskeyAuthenticatedReply {
    /// Signed in: the user and the session.
    SignedIn(SignInReply),
    /// The session re-authenticated.
    Reauthenticated(ReauthenticatedReply),
}
