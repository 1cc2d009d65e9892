//! The route table: every route of the library as one row of data.
//!
//! Dispatch ([`Auth::handle`](crate::Auth::handle)), the adapters' mounting
//! ([`Auth::route_paths`](crate::Auth::route_paths)), the gate's CSRF exemption
//! ([`Auth::is_library_route`](crate::Auth::is_library_route)), the session-only rule and
//! the OpenAPI document ([`Auth::openapi`](crate::Auth::openapi)) all read this table. Adding
//! a route is one row here and its handler; nothing else lists routes.

use std::future::Future;
use std::pin::Pin;

use http::Method;
use utoipa::openapi::{Ref, RefOr, Schema};

use super::schema::{
    AcceptReply, AccountsReply, ActiveOrgBody, ActiveOrgReply, AuditPageReply, ChangePasswordBody,
    CreateOrgBody, CurrentSession, Done, EmailBody, InvitationView, InviteBody, Jwks, MemberView,
    NewTokenBody, NewTokenReply, OrgWithRole, ProvidersReply, ResetConfirmBody, RoleBody,
    SessionListItem, SignInBody, SignInReply, SignUpBody, TokenBody, TokenView, TransferBody,
    TransferReply, UserReply,
};
use super::schema::{
    CodeBody, MfaChallengeReply, MfaPolicyBody, MfaPolicyReply, MfaStatusReply, ReauthenticateBody,
    ReauthenticatedReply, RecoveryCodesReply, TotpEnrolmentReply, VerifyBody,
};
use super::schema::{
    EmptyBody, PasskeyAuthenticateBody, PasskeyAuthenticatedReply, PasskeyOptionsReply,
    PasskeyRegisterBody, PasskeyRenameBody, PasskeyView,
};
use super::{Call, Reply, account, audit, mfa, oauth, orgs, passkeys, tokens};
use crate::AuthError;

/// What a handler returns.
pub(super) type Handled<'c> = Pin<Box<dyn Future<Output = Result<Reply, AuthError>> + Send + 'c>>;
/// A route's handler.
pub(super) type Handler = for<'c> fn(&'c Call<'c>) -> Handled<'c>;
/// Registers a type's schema (and the schemas it refers to) and answers a reference to it.
pub(crate) type SchemaFn = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// No credential needed: sign-up, sign-in, mailed links, provider sign-in, the JWKS.
    Public,
    /// A signed-in caller: a browser session, or an API token within its scopes.
    Principal,
    /// A browser session only; an API token gets 403 `forbidden`, whatever its scopes. The
    /// routes that act on the signed-in user rather than on an organization's resources.
    Session,
}

/// What a route's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body is read.
    None,
    /// JSON only (`application/json`).
    Json,
    /// JSON, or an HTML form (`application/x-www-form-urlencoded`) with the same fields.
    JsonOrForm,
}

/// A documented query parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) required: bool,
}

/// A documented answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) description: &'static str,
    /// The JSON body's schema; `None` for an empty body.
    pub(crate) schema: Option<SchemaFn>,
    /// Whether it sets or clears the session cookie.
    pub(crate) sets_cookie: bool,
    /// Whether it is a redirect (`Location`).
    pub(crate) redirect: bool,
    /// A download's media types (its body is a file, not JSON), with `Content-Disposition`.
    pub(crate) download: &'static [&'static str],
}

/// One route: a method on a path pattern (`{name}` matches one non-empty segment).
pub struct RouteSpec {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) operation_id: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) access: Access,
    /// Sign-in and sign-up: the login-CSRF variant of the origin check.
    pub(crate) login_csrf: bool,
    pub(crate) body: BodyKind,
    pub(crate) body_schema: Option<SchemaFn>,
    pub(crate) query: &'static [Query],
    pub(crate) answers: &'static [Answer],
    pub(crate) handler: Handler,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("operation_id", &self.operation_id)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl RouteSpec {
    /// The method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path pattern, relative to the base path (`/orgs/{org_id}/members`).
    #[must_use]
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The OpenAPI `operationId`.
    #[must_use]
    pub fn operation_id(&self) -> &'static str {
        self.operation_id
    }

    /// Who may call it.
    #[must_use]
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether its CSRF check is the login variant (sign-in, sign-up).
    #[must_use]
    pub fn login_csrf(&self) -> bool {
        self.login_csrf
    }

    /// Whether it takes an HTML form body as well as JSON.
    #[must_use]
    pub fn accepts_form(&self) -> bool {
        self.body == BodyKind::JsonOrForm
    }

    /// The values of the path's `{name}` segments in `path` (relative to the base path), or
    /// `None` when `path` is not this pattern.
    pub(crate) fn match_path<'p>(&self, path: &'p str) -> Option<Params<'p>> {
        match_pattern(self.path, path)
    }
}

/// The values of a matched path's `{name}` segments.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params<'p> {
    values: Vec<(&'static str, &'p str)>,
}

impl<'p> Params<'p> {
    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<&'p str> {
        self.values
            .iter()
            .find_map(|(n, v)| (*n == name).then_some(*v))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &'p str)> + '_ {
        self.values.iter().copied()
    }
}

/// Whether `path` is `pattern` (as [`match_pattern`], without collecting the values).
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let (Some(mut segments), Some(expected)) = (
        path.strip_prefix('/').map(|p| p.split('/')),
        pattern.strip_prefix('/').map(|p| p.split('/')),
    ) else {
        return false;
    };
    for expected in expected {
        let Some(segment) = segments.next() else {
            return false;
        };
        let ok = if expected.starts_with('{') {
            !segment.is_empty()
        } else {
            segment == expected
        };
        if !ok {
            return false;
        }
    }
    segments.next().is_none()
}

/// `path` against `pattern`: static segments equal, each `{name}` one non-empty segment.
fn match_pattern<'p>(pattern: &'static str, path: &'p str) -> Option<Params<'p>> {
    let mut values = Vec::new();
    let mut segments = path.strip_prefix('/')?.split('/');
    for expected in pattern.strip_prefix('/')?.split('/') {
        let segment = segments.next()?;
        if let Some(name) = expected.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            values.push((name, segment));
        } else if segment != expected {
            return None;
        }
    }
    segments.next().is_none().then_some(Params { values })
}

/// Whether a path parameter is an id (a UUID); the others (`provider`) are names.
pub(crate) fn is_id_param(name: &str) -> bool {
    name.ends_with("_id")
}

/// The schema function of `T`.
const fn schema<T: utoipa::ToSchema>() -> SchemaFn {
    fn register<T: utoipa::ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
        RefOr::Ref(Ref::from_schema_name(T::name()))
    }
    register::<T>
}

/// The schema function of "one of `A` and `B`" (an answer whose shape depends on the case).
const fn one_of<A: utoipa::ToSchema, B: utoipa::ToSchema>() -> SchemaFn {
    fn register<A: utoipa::ToSchema, B: utoipa::ToSchema>(
        out: &mut Vec<(String, RefOr<Schema>)>,
    ) -> RefOr<Schema> {
        out.push((A::name().into_owned(), A::schema()));
        A::schemas(out);
        out.push((B::name().into_owned(), B::schema()));
        B::schemas(out);
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(A::name())))
            .item(RefOr::Ref(Ref::from_schema_name(B::name())))
            .into()
    }
    register::<A, B>
}

/// The schema function of an array of `T`.
const fn array<T: utoipa::ToSchema>() -> SchemaFn {
    fn register<T: utoipa::ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(RefOr::Ref(Ref::from_schema_name(T::name())))
            .into()
    }
    register::<T>
}

const fn ok(description: &'static str, schema: SchemaFn) -> Answer {
    Answer {
        status: 200,
        description,
        schema: Some(schema),
        sets_cookie: false,
        redirect: false,
        download: &[],
    }
}

const fn created(description: &'static str, schema: SchemaFn) -> Answer {
    Answer {
        status: 201,
        ..ok(description, schema)
    }
}

const fn empty(status: u16, description: &'static str) -> Answer {
    Answer {
        status,
        description,
        schema: None,
        sets_cookie: false,
        redirect: false,
        download: &[],
    }
}

/// A 200 whose body is a file of one of `media_types`.
const fn download(description: &'static str, media_types: &'static [&'static str]) -> Answer {
    Answer {
        download: media_types,
        ..empty(200, description)
    }
}

const fn redirect(status: u16, description: &'static str) -> Answer {
    Answer {
        redirect: true,
        ..empty(status, description)
    }
}

const fn with_cookie(answer: Answer) -> Answer {
    Answer {
        sets_cookie: true,
        ..answer
    }
}

/// The filters and paging of the audit routes.
const AUDIT_FILTERS: [Query; 5] = [
    Query {
        name: "user",
        description: "Only events done by or concerning this user (an id).",
        required: false,
    },
    Query {
        name: "kind",
        description: "Only events of this kind (`sign_in.failed`, …).",
        required: false,
    },
    Query {
        name: "since",
        description: "Only events at or after this time (RFC 3339, or a date: its midnight UTC).",
        required: false,
    },
    Query {
        name: "until",
        description: "Only events before this time (RFC 3339, or a date: its midnight UTC).",
        required: false,
    },
    Query {
        name: "cursor",
        description: "The `next_cursor` of the page before (opaque).",
        required: false,
    },
];

const AUDIT_LIMIT: Query = Query {
    name: "limit",
    description: "How many events, 1 to 200 (default 50).",
    required: false,
};

const EXPORT_FORMAT: Query = Query {
    name: "format",
    description: "`jsonl` (default) or `csv`.",
    required: false,
};

const NEXT: Query = Query {
    name: "next",
    description: "A path of the app to go to afterwards (only local paths are followed).",
    required: false,
};

/// Wraps an async handler as a [`Handler`].
macro_rules! handler {
    ($f:path) => {{
        fn handle<'c>(call: &'c Call<'c>) -> Handled<'c> {
            Box::pin($f(call))
        }
        handle
    }};
    (sync $f:path) => {{
        fn handle<'c>(call: &'c Call<'c>) -> Handled<'c> {
            Box::pin(std::future::ready($f(call)))
        }
        handle
    }};
}

/// One row of the table.
macro_rules! route {
    (@login) => { false };
    (@login $login:literal) => { $login };
    (@schema) => { None };
    (@schema $schema:expr) => { Some($schema) };
    ($method:ident $path:literal, $op:literal, $tag:literal, $summary:literal,
     access: $access:ident, $(login: $login:literal,)? body: $body:ident $(($schema:expr))?,
     query: [$($q:expr),*], answers: [$($a:expr),* $(,)?], handler: $handler:expr $(,)?) => {
        RouteSpec {
            method: Method::$method,
            path: $path,
            operation_id: $op,
            summary: $summary,
            tag: $tag,
            access: Access::$access,
            login_csrf: route!(@login $($login)?),
            body: BodyKind::$body,
            body_schema: route!(@schema $($schema)?),
            query: &[$($q),*],
            answers: &[$($a),*],
            handler: $handler,
        }
    };
}

/// Every route of the library, relative to the base path.
pub(crate) static ROUTES: &[RouteSpec] = &[
    // ---- accounts and sessions ----
    route!(POST "/auth/sign-up", "signUp", "accounts", "Create an account and sign in",
        access: Public, login: true, body: JsonOrForm(schema::<SignUpBody>()), query: [],
        answers: [with_cookie(created("The account, signed in.", schema::<UserReply>()))],
        handler: handler!(account::sign_up)),
    route!(POST "/auth/sign-in", "signIn", "accounts", "Sign in with email and password",
        access: Public, login: true, body: JsonOrForm(schema::<SignInBody>()), query: [],
        answers: [
            with_cookie(ok("Signed in; or, for a user with a second factor, no session yet: \
                `{mfa_required, methods}` and the pending sign-in cookie.",
                one_of::<SignInReply, MfaChallengeReply>())),
        ],
        handler: handler!(account::sign_in)),
    // ---- second factors and step-up ----
    route!(POST "/auth/mfa/verify", "verifySecondFactor", "mfa",
        "The second step of sign-in: a TOTP code or a recovery code",
        access: Public, login: true, body: JsonOrForm(schema::<VerifyBody>()), query: [],
        answers: [with_cookie(ok("Signed in: a new session; the pending sign-in is over.",
            schema::<SignInReply>()))],
        handler: handler!(mfa::verify)),
    route!(GET "/auth/mfa", "getSecondFactors", "mfa", "The user's second factors",
        access: Session, body: None, query: [],
        answers: [ok("The factors.", schema::<MfaStatusReply>())],
        handler: handler!(mfa::status)),
    route!(POST "/auth/mfa/totp", "beginTotp", "mfa",
        "Begin a TOTP enrolment (step-up): the secret, shown once; active once confirmed",
        access: Session, body: None, query: [],
        answers: [ok("The secret, its otpauth:// URI and a QR code.", schema::<TotpEnrolmentReply>())],
        handler: handler!(mfa::begin_totp)),
    route!(DELETE "/auth/mfa/totp", "removeTotp", "mfa", "Remove the TOTP factor (step-up)",
        access: Session, body: None, query: [],
        answers: [empty(204, "Removed.")],
        handler: handler!(mfa::remove_totp)),
    route!(POST "/auth/mfa/totp/confirm", "confirmTotp", "mfa",
        "Confirm the enrolment with a first code; recovery codes are issued",
        access: Session, body: JsonOrForm(schema::<CodeBody>()), query: [],
        answers: [ok("On; ten recovery codes, shown once.", schema::<RecoveryCodesReply>())],
        handler: handler!(mfa::confirm_totp)),
    route!(POST "/auth/mfa/recovery-codes", "regenerateRecoveryCodes", "mfa",
        "A new set of recovery codes (step-up); the old set is void",
        access: Session, body: None, query: [],
        answers: [ok("Ten recovery codes, shown once.", schema::<RecoveryCodesReply>())],
        handler: handler!(mfa::regenerate_recovery_codes)),
    route!(POST "/auth/reauthenticate", "reauthenticate", "mfa",
        "Prove it is you again (password, TOTP or recovery code): step-up routes open",
        access: Session, body: JsonOrForm(schema::<ReauthenticateBody>()), query: [],
        answers: [ok("The session's new authentication time.", schema::<ReauthenticatedReply>())],
        handler: handler!(mfa::reauthenticate)),
    route!(POST "/auth/sign-out", "signOut", "accounts", "End this session",
        access: Session, body: None, query: [],
        answers: [with_cookie(empty(204, "Signed out; the cookie is cleared."))],
        handler: handler!(account::sign_out)),
    route!(GET "/auth/session", "getSession", "accounts",
        "The caller: user, session, active organization, role and permissions",
        access: Session, body: None, query: [],
        answers: [ok("The caller.", schema::<CurrentSession>())],
        handler: handler!(account::session)),
    route!(GET "/auth/sessions", "listSessions", "accounts", "The user's sessions",
        access: Session, body: None, query: [],
        answers: [ok("Every live session of the user.", array::<SessionListItem>())],
        handler: handler!(account::sessions)),
    route!(DELETE "/auth/sessions/{session_id}", "endSession", "accounts",
        "End one of the user's sessions",
        access: Session, body: None, query: [],
        answers: [empty(204, "Ended (the cookie is cleared when it was this one).")],
        handler: handler!(account::end_session)),
    route!(POST "/auth/sign-out-everywhere", "signOutEverywhere", "accounts",
        "End every session of the user",
        access: Session, body: None, query: [],
        answers: [with_cookie(empty(204, "Every session ended; the cookie is cleared."))],
        handler: handler!(account::sign_out_everywhere)),
    route!(GET "/auth/verify-email", "verifyEmailLink", "accounts",
        "The mailed verification link: verify, then go to the app",
        access: Public, body: None,
        query: [Query { name: "token", description: "The token from the mail.", required: true }],
        answers: [redirect(303, "Verified; to the page after sign-in.")],
        handler: handler!(account::verify_email_link)),
    route!(POST "/auth/verify-email", "verifyEmail", "accounts", "Verify an address with its token",
        access: Public, body: JsonOrForm(schema::<TokenBody>()), query: [],
        answers: [ok("Verified.", schema::<UserReply>())],
        handler: handler!(account::verify_email)),
    route!(POST "/auth/verify-email/send", "sendVerification", "accounts",
        "Mail a new verification link",
        access: Session, body: None, query: [],
        answers: [empty(202, "Sent, unless the address is verified or the mail limit holds it.")],
        handler: handler!(account::send_verification)),
    route!(POST "/auth/password-reset", "requestPasswordReset", "accounts",
        "Mail a password-reset link (answered alike whether the account exists)",
        access: Public, body: JsonOrForm(schema::<EmailBody>()), query: [],
        answers: [empty(202, "Accepted.")],
        handler: handler!(sync account::password_reset)),
    route!(POST "/auth/password-reset/confirm", "confirmPasswordReset", "accounts",
        "Set a new password with a reset token; every session ends",
        access: Public, body: JsonOrForm(schema::<ResetConfirmBody>()), query: [],
        answers: [ok("The password is set.", schema::<Done>())],
        handler: handler!(account::password_reset_confirm)),
    route!(POST "/auth/change-password", "changePassword", "accounts",
        "Change the password; the other sessions end",
        access: Session, body: JsonOrForm(schema::<ChangePasswordBody>()), query: [],
        answers: [with_cookie(ok("Changed; this session goes on under a new id.", schema::<Done>()))],
        handler: handler!(account::change_password)),
    route!(GET "/auth/security-events", "listSecurityEvents", "accounts",
        "The user's own security events: sign-ins, failed ones, password, sessions, tokens…",
        access: Session, body: None,
        query: [AUDIT_FILTERS[0], AUDIT_FILTERS[1], AUDIT_FILTERS[2], AUDIT_FILTERS[3],
            AUDIT_FILTERS[4], AUDIT_LIMIT],
        answers: [ok("A page of the events, newest first.", schema::<AuditPageReply>())],
        handler: handler!(audit::security_events)),
    route!(POST "/auth/active-org", "setActiveOrg", "organizations",
        "Choose the session's active organization (or none)",
        access: Session, body: JsonOrForm(schema::<ActiveOrgBody>()), query: [],
        answers: [with_cookie(ok("The active organization now.", schema::<ActiveOrgReply>()))],
        handler: handler!(orgs::set_active_org)),
    // ---- organizations ----
    route!(GET "/orgs", "listOrgs", "organizations", "The user's organizations and roles",
        access: Session, body: None, query: [],
        answers: [ok("The organizations.", array::<OrgWithRole>())],
        handler: handler!(orgs::list)),
    route!(POST "/orgs", "createOrg", "organizations", "Create an organization, owned by the user",
        access: Session, body: JsonOrForm(schema::<CreateOrgBody>()), query: [],
        answers: [created("The organization.", schema::<OrgWithRole>())],
        handler: handler!(orgs::create)),
    route!(DELETE "/orgs/{org_id}", "deleteOrg", "organizations", "Delete an organization (org:delete)",
        access: Principal, body: None, query: [],
        answers: [empty(204, "Deleted.")],
        handler: handler!(orgs::delete)),
    route!(GET "/orgs/{org_id}/members", "listMembers", "organizations", "The members",
        access: Principal, body: None, query: [],
        answers: [ok("The members.", array::<MemberView>())],
        handler: handler!(orgs::members)),
    route!(PATCH "/orgs/{org_id}/members/{user_id}", "changeRole", "organizations",
        "Change a member's role (members:manage; the last owner stays)",
        access: Principal, body: JsonOrForm(schema::<RoleBody>()), query: [],
        answers: [ok("The member now.", schema::<MemberView>())],
        handler: handler!(orgs::change_role)),
    route!(DELETE "/orgs/{org_id}/members/{user_id}", "removeMember", "organizations",
        "Remove a member, or leave (own id, a browser session only)",
        access: Principal, body: None, query: [],
        answers: [empty(204, "Removed.")],
        handler: handler!(orgs::remove_member)),
    route!(GET "/orgs/{org_id}/audit", "listAuditEvents", "organizations",
        "The organization's audit log (audit:read: admins and owners)",
        access: Principal, body: None,
        query: [AUDIT_FILTERS[0], AUDIT_FILTERS[1], AUDIT_FILTERS[2], AUDIT_FILTERS[3],
            AUDIT_FILTERS[4], AUDIT_LIMIT],
        answers: [ok("A page of the events, newest first.", schema::<AuditPageReply>())],
        handler: handler!(audit::org_log)),
    route!(GET "/orgs/{org_id}/audit/export", "exportAuditEvents", "organizations",
        "Every matching event of the audit log as a file (audit:read; up to 10 000, the \
         Audit-Next-Cursor header names the rest)",
        access: Principal, body: None,
        query: [EXPORT_FORMAT, AUDIT_FILTERS[0], AUDIT_FILTERS[1], AUDIT_FILTERS[2],
            AUDIT_FILTERS[3], AUDIT_FILTERS[4]],
        answers: [download("The events, newest first.", &["application/x-ndjson", "text/csv"])],
        handler: handler!(audit::org_export)),
    route!(PUT "/orgs/{org_id}/mfa-policy", "setOrgMfaPolicy", "organizations",
        "Require a second factor of the members, or not (members:manage, step-up)",
        access: Principal, body: JsonOrForm(schema::<MfaPolicyBody>()), query: [],
        answers: [ok("The policy now.", schema::<MfaPolicyReply>())],
        handler: handler!(mfa::set_org_policy)),
    route!(GET "/orgs/{org_id}/invitations", "listInvitations", "organizations",
        "Pending invitations",
        access: Principal, body: None, query: [],
        answers: [ok("Pending invitations.", array::<InvitationView>())],
        handler: handler!(orgs::pending_invitations)),
    route!(POST "/orgs/{org_id}/invitations", "invite", "organizations",
        "Invite someone by email (members:invite)",
        access: Principal, body: JsonOrForm(schema::<InviteBody>()), query: [],
        answers: [created("The invitation (the link is mailed).", schema::<InvitationView>())],
        handler: handler!(orgs::invite)),
    route!(DELETE "/orgs/{org_id}/invitations/{invitation_id}", "revokeInvitation",
        "organizations", "Revoke a pending invitation",
        access: Principal, body: None, query: [],
        answers: [empty(204, "Revoked.")],
        handler: handler!(orgs::revoke_invitation)),
    route!(POST "/orgs/{org_id}/transfer", "transferOwnership", "organizations",
        "Hand ownership to another member",
        access: Session, body: JsonOrForm(schema::<TransferBody>()), query: [],
        answers: [with_cookie(ok("Both memberships after the transfer.", schema::<TransferReply>()))],
        handler: handler!(orgs::transfer)),
    route!(POST "/invitations/accept", "acceptInvitation", "organizations",
        "Accept an invitation; its organization becomes the active one",
        access: Session, body: JsonOrForm(schema::<TokenBody>()), query: [],
        answers: [with_cookie(ok("Joined.", schema::<AcceptReply>()))],
        handler: handler!(orgs::accept_invitation)),
    // ---- API tokens ----
    route!(GET "/api/tokens", "listTokens", "api-tokens",
        "The active organization's tokens (own ones; all with tokens:manage)",
        access: Session, body: None, query: [],
        answers: [ok("The tokens' records.", array::<TokenView>())],
        handler: handler!(tokens::list)),
    route!(POST "/api/tokens", "createToken", "api-tokens",
        "Create an API token in the active organization (tokens:create)",
        access: Session, body: Json(schema::<NewTokenBody>()), query: [],
        answers: [created("The token, shown once.", schema::<NewTokenReply>())],
        handler: handler!(tokens::create)),
    route!(DELETE "/api/tokens/{token_id}", "revokeToken", "api-tokens",
        "Revoke a token, at once on every instance",
        access: Session, body: None, query: [],
        answers: [empty(204, "Revoked.")],
        handler: handler!(tokens::revoke)),
    route!(GET "/.well-known/jwks.json", "jwks", "api-tokens",
        "The public keys that verify API tokens",
        access: Public, body: None, query: [],
        answers: [ok("The key set.", schema::<Jwks>())],
        handler: handler!(sync tokens::jwks)),
    // ---- providers ----
    route!(GET "/auth/oauth/{provider}", "startProviderSignIn", "providers",
        "Sign in with a provider: to the provider",
        access: Public, body: None, query: [NEXT],
        answers: [redirect(302, "To the provider (or back to the sign-in page, saying why).")],
        handler: handler!(oauth::start)),
    route!(GET "/auth/oauth/{provider}/callback", "providerCallback", "providers",
        "The provider sends the browser back here",
        access: Public, body: None,
        query: [
            Query { name: "state", description: "The flow's state.", required: false },
            Query { name: "code", description: "The authorization code.", required: false },
            Query { name: "error", description: "The provider's error.", required: false }
        ],
        answers: [with_cookie(redirect(302, "Signed in or linked; to the page asked for."))],
        handler: handler!(oauth::callback)),
    route!(POST "/auth/oauth/{provider}/link", "linkProvider", "providers",
        "Link a provider to the signed-in user: to the provider",
        access: Session, body: None, query: [NEXT],
        answers: [redirect(303, "To the provider.")],
        handler: handler!(oauth::link)),
    route!(GET "/auth/providers", "listProviders", "providers",
        "The providers a user can sign in with (for the sign-in page's buttons)",
        access: Public, body: None, query: [],
        answers: [ok("The configured providers.", schema::<ProvidersReply>())],
        handler: handler!(sync oauth::providers)),
    route!(GET "/auth/accounts", "listLinkedAccounts", "providers",
        "The user's linked providers",
        access: Session, body: None, query: [],
        answers: [ok("The links.", schema::<AccountsReply>())],
        handler: handler!(oauth::accounts)),
    route!(DELETE "/auth/accounts/{provider}", "unlinkProvider", "providers",
        "Unlink a provider, unless it is the last way to sign in",
        access: Session, body: None, query: [],
        answers: [empty(204, "Unlinked.")],
        handler: handler!(oauth::unlink)),
    // ---- passkeys ----
    route!(POST "/auth/passkeys/register/options", "passkeyRegistrationOptions", "passkeys",
        "Begin registering a passkey (needs a recent sign-in)",
        access: Session, body: Json(schema::<EmptyBody>()), query: [],
        answers: [ok("The ceremony and the options for navigator.credentials.create().",
            schema::<PasskeyOptionsReply>())],
        handler: handler!(passkeys::register_options)),
    route!(POST "/auth/passkeys/register", "registerPasskey", "passkeys",
        "Finish registering a passkey with the authenticator's answer",
        access: Session, body: Json(schema::<PasskeyRegisterBody>()), query: [],
        answers: [created("The passkey.", schema::<PasskeyView>())],
        handler: handler!(passkeys::register)),
    route!(GET "/auth/passkeys", "listPasskeys", "passkeys", "The user's passkeys",
        access: Session, body: None, query: [],
        answers: [ok("The passkeys, oldest first.", array::<PasskeyView>())],
        handler: handler!(passkeys::list)),
    route!(PATCH "/auth/passkeys/{passkey_id}", "renamePasskey", "passkeys", "Rename a passkey",
        access: Session, body: Json(schema::<PasskeyRenameBody>()), query: [],
        answers: [ok("The passkey.", schema::<PasskeyView>())],
        handler: handler!(passkeys::rename)),
    route!(DELETE "/auth/passkeys/{passkey_id}", "removePasskey", "passkeys",
        "Remove a passkey (needs a recent sign-in)",
        access: Session, body: None, query: [],
        answers: [empty(204, "Removed.")],
        handler: handler!(passkeys::remove)),
    route!(POST "/auth/passkeys/authenticate/options", "passkeyAuthenticationOptions", "passkeys",
        "Begin an authentication: a pending sign-in's user's passkeys (second factor), else \
         the session user's (re-authentication), else any passkey of the site (passwordless \
         sign-in)",
        access: Public, body: Json(schema::<EmptyBody>()), query: [],
        answers: [ok("The ceremony and the options for navigator.credentials.get().",
            schema::<PasskeyOptionsReply>())],
        handler: handler!(passkeys::authenticate_options)),
    route!(POST "/auth/passkeys/authenticate", "authenticateWithPasskey", "passkeys",
        "Complete a pending sign-in, re-authenticate the session's user, or sign in with a \
         passkey",
        access: Public, login: true, body: Json(schema::<PasskeyAuthenticateBody>()), query: [],
        answers: [with_cookie(ok("Signed in ({user, session}, with the session cookie; a \
            pending sign-in's cookie is cleared) or the session re-authenticated \
            ({authenticated_at}).",
            schema::<PasskeyAuthenticatedReply>()))],
        handler: handler!(passkeys::authenticate)),
];

/// A route's row for `method` on `path` (relative to the base path), with its parameters; or,
/// when the path is a route's but not with `method`, the methods it has.
pub(crate) enum Found<'p> {
    Route(&'static RouteSpec, Params<'p>),
    MethodNotAllowed(Vec<&'static Method>),
    NoRoute,
}

/// Finds the route of `method` on `path`.
pub(crate) fn find<'p>(method: &Method, path: &'p str) -> Found<'p> {
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = route.match_path(path) {
            if route.method == *method {
                return Found::Route(route, params);
            }
            if !allowed.contains(&&route.method) {
                allowed.push(&route.method);
            }
        }
    }
    if allowed.is_empty() {
        Found::NoRoute
    } else {
        Found::MethodNotAllowed(allowed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        let route = ROUTES
            .iter()
            .find(|r| r.path == "/orgs/{org_id}/members/{user_id}")
            .expect("a row");
        let params = route.match_path("/orgs/a/members/b").expect("a match");
        assert_eq!(params.get("org_id"), Some("a"));
        assert_eq!(params.get("user_id"), Some("b"));
        assert!(matches(route.path, "/orgs/a/members/b"));
        for bad in [
            "/orgs/a/members/",
            "/orgs//members/b",
            "/orgs/a/members/b/c",
            "/orgs/a/members",
            "orgs/a/members/b",
            "/orgs/a/Members/b",
        ] {
            assert!(route.match_path(bad).is_none(), "{bad}");
            assert!(!matches(route.path, bad), "{bad}");
        }
    }

    #[test]
    fn the_table_has_one_row_per_method_and_path_and_unique_operation_ids() {
        let mut seen = HashSet::new();
        let mut ids = HashSet::new();
        for route in ROUTES {
            assert!(
                seen.insert((route.method.clone(), route.path)),
                "{route:?} twice"
            );
            assert!(
                ids.insert(route.operation_id),
                "{route:?}: operationId twice"
            );
            assert!(route.path.starts_with('/') && !route.path.ends_with('/'));
            let unsafe_method = !matches!(route.method, Method::GET | Method::HEAD);
            assert!(
                route.body == BodyKind::None || unsafe_method,
                "{route:?}: a GET with a body"
            );
            assert_eq!(
                route.body == BodyKind::None,
                route.body_schema.is_none(),
                "{route:?}: a body needs its schema"
            );
        }
    }

    #[test]
    fn no_concrete_path_matches_two_rows_of_one_method() {
        // Replace each `{name}` by a value and check that only its own row of that method
        // matches: the order of the table never decides.
        for route in ROUTES {
            let concrete = route
                .path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let matching: Vec<_> = ROUTES
                .iter()
                .filter(|r| r.method == route.method && r.match_path(&concrete).is_some())
                .map(|r| r.path)
                .collect();
            assert_eq!(matching, [route.path], "{concrete}");
        }
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_its_methods() {
        let Found::MethodNotAllowed(methods) = find(&Method::PUT, "/orgs/a/members/b") else {
            panic!("405 expected");
        };
        assert_eq!(methods, [&Method::PATCH, &Method::DELETE]);
        assert!(matches!(find(&Method::GET, "/auth/nope"), Found::NoRoute));
        assert!(matches!(
            find(&Method::GET, "/auth/oauth/google"),
            Found::Route(r, p) if r.operation_id == "startProviderSignIn" && p.get("provider") == Some("google")
        ));
    }
}
