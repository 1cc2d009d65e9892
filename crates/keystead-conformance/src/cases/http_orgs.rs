//! Organizations, members, roles and invitations through the core's HTTP routes
//! ([`Auth::handle`](keystead::Auth::handle)) on each real store: `/orgs/{org_id}/members…`,
//! `/orgs/{org_id}/invitations…`, `/orgs/{org_id}/transfer`, `DELETE /orgs/{org_id}` and
//! `POST /invitations/accept`, with the contract's rules (only owners touch owners, an
//! organization keeps an owner, invitations go to a verified address once) and their races
//! (owners demoting each other, one invitation accepted many times at once, a member removed
//! while making requests).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use keystead::{AuditQuery, AuthStore, Clock, InvitationId, OrgId, Role, TokenHash, UserId};
use serde_json::{Value, json};
use time::Duration;

use super::http_routes::{
    App, PASSWORD, Req, app, assert_keys, assert_problem, assert_status, json_of, link_token,
    session_token, time_of,
};
use super::{owners, race, role_of};
use crate::fixtures;

/// The path of the invitation link (the default of `OrgsConfig`).
const ACCEPT_PAGE: &str = "/accept-invitation";
/// How many tasks race for one invitation.
const RACERS: usize = 16;
/// How many times two owners race to demote each other.
const OWNER_ROUNDS: usize = 8;

/// A signed-up user with a session.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    email: String,
    token: String,
}

impl Person {
    fn user_id(&self) -> UserId {
        self.id.parse().expect("a user id")
    }
}

/// Signs up `email` and verifies the address with the mailed link.
async fn verified(app: &App, email: &str) -> Person {
    let person = unverified(app, email).await;
    let link = app.latest_link_token("/auth/verify-email");
    let response = app
        .send(Req::post("/auth/verify-email").json(&json!({ "token": link })))
        .await;
    assert_status(&response, StatusCode::OK);
    person
}

/// Signs up `email` without verifying it.
async fn unverified(app: &App, email: &str) -> Person {
    let (id, token) = app.sign_up(email).await;
    Person {
        id,
        email: email.to_owned(),
        token,
    }
}

/// Creates an organization owned by `owner`; returns its id.
async fn create_org(app: &App, owner: &Person, name: &str) -> String {
    let response = app
        .send(
            Req::post("/orgs")
                .cookie(&owner.token)
                .json(&json!({ "name": name })),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
    json_of(&response)["id"]
        .as_str()
        .expect("an org id")
        .to_owned()
}

/// `POST /orgs/{org}/invitations {email, role}` by `by`.
async fn invite(app: &App, org: &str, by: &Person, email: &str, role: &str) -> Response<Bytes> {
    app.send(
        Req::post(&format!("/orgs/{org}/invitations"))
            .cookie(&by.token)
            .json(&json!({ "email": email, "role": role })),
    )
    .await
}

/// Invites `email` as `role` (asserting 201 and the answer's shape); returns the mailed token.
async fn invitation_token(app: &App, org: &str, by: &Person, email: &str, role: &str) -> String {
    let response = invite(app, org, by, email, role).await;
    assert_status(&response, StatusCode::CREATED);
    let body = json_of(&response);
    assert_keys(&body, &["id", "email", "role", "expires_at"]);
    assert_eq!(body["email"], email);
    assert_eq!(body["role"], role);
    let message = app.mailer.messages().last().expect("a mail").clone();
    assert_eq!(
        message.to.as_str(),
        email,
        "the invitation goes to the invitee"
    );
    link_token(&message, ACCEPT_PAGE)
}

/// `POST /invitations/accept {token}` by `person`.
async fn accept(app: &App, person: &Person, token: &str) -> Response<Bytes> {
    app.send(
        Req::post("/invitations/accept")
            .cookie(&person.token)
            .json(&json!({ "token": token })),
    )
    .await
}

/// A verified user `email` who joined `org` as `role` through an invitation by `owner`.
async fn join(app: &App, org: &str, owner: &Person, email: &str, role: &str) -> Person {
    let person = verified(app, email).await;
    let token = invitation_token(app, org, owner, email, role).await;
    let response = accept(app, &person, &token).await;
    assert_status(&response, StatusCode::OK);
    assert_eq!(json_of(&response), json!({ "org_id": org, "role": role }));
    // Joining rotates the session.
    Person {
        token: session_token(&response),
        ..person
    }
}

/// `PATCH /orgs/{org}/members/{user} {role}` by `by`.
async fn set_role(app: &App, org: &str, by: &Person, user: &str, role: &str) -> Response<Bytes> {
    app.send(
        Req::new(Method::PATCH, &format!("/orgs/{org}/members/{user}"))
            .cookie(&by.token)
            .json(&json!({ "role": role })),
    )
    .await
}

/// `DELETE /orgs/{org}/members/{user}` by `by`.
async fn remove(app: &App, org: &str, by: &Person, user: &str) -> Response<Bytes> {
    app.send(
        Req::delete(&format!("/orgs/{org}/members/{user}"))
            .cookie(&by.token)
            .empty(),
    )
    .await
}

/// `GET /orgs/{org}/members` by `by`.
async fn members(app: &App, org: &str, by: &Person) -> Response<Bytes> {
    app.send(
        Req::get(&format!("/orgs/{org}/members"))
            .cookie(&by.token)
            .empty(),
    )
    .await
}

/// The role of `user` in `org`, read from the store.
async fn stored_role(app: &App, org: &str, user: &Person) -> Option<Role> {
    let org_id: OrgId = org.parse().expect("an org id");
    role_of(&*app.store, org_id, user.user_id()).await
}

/// The kinds of the audit events of `org`, oldest first.
async fn org_audit_kinds(app: &App, org: &str) -> Vec<String> {
    let mut events = app
        .store
        .audit_events(&AuditQuery {
            org_id: Some(org.parse().expect("an org id")),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .expect("audit_events");
    events.reverse();
    events.into_iter().map(|e| e.kind).collect()
}

/// An invitation is mailed as a link to the accept page with a 256-bit token kept only as a
/// hash, lasts seven days, is listed as pending, and is accepted once, by a signed-in user
/// whose verified email is the invited one: unverified is 403 `email_not_verified`, another
/// address 403 `forbidden`, a garbage or used token 400 `invalid_link`. The accepted
/// organization becomes the session's active one with the invited role.
pub async fn http_org_invitation_is_accepted_once_by_the_verified_invitee(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let invitee = unverified(&app, "Invitee@Example.com").await;
    let stranger = verified(&app, "stranger@example.com").await;

    let response = invite(&app, &org, &owner, "invitee@example.com", "admin").await;
    assert_status(&response, StatusCode::CREATED);
    let created = json_of(&response);
    let expires_at = time_of(&created["expires_at"]);
    assert_eq!(expires_at, app.clock.now() + Duration::days(7));
    let message = app.mailer.messages().last().expect("a mail").clone();
    assert_eq!(message.to.as_str(), "invitee@example.com");
    assert!(message.subject.contains("Acme"), "{}", message.subject);
    let token = link_token(&message, ACCEPT_PAGE);
    assert_eq!(token.len(), 43, "a 256-bit base64url token");
    let stored = store
        .invitation_by_token_hash(&TokenHash::of(&token))
        .await
        .expect("invitation_by_token_hash")
        .expect("the invitation is found by the token's hash");
    assert_eq!(stored.id.to_string(), created["id"]);
    assert_eq!(stored.invited_by, owner.user_id());

    let pending = json_of(
        &app.send(
            Req::get(&format!("/orgs/{org}/invitations"))
                .cookie(&owner.token)
                .empty(),
        )
        .await,
    );
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(pending[0]["id"], created["id"]);
    assert_eq!(pending[0]["invited_by"], owner.id.as_str());

    assert_problem(
        &accept(&app, &invitee, &token).await,
        403,
        "email_not_verified",
    );
    assert_problem(&accept(&app, &stranger, &token).await, 403, "forbidden");
    assert_problem(
        &accept(&app, &invitee, "not-a-token").await,
        400,
        "invalid_link",
    );
    assert_problem(
        &app.send(Req::post("/invitations/accept").json(&json!({ "token": token })))
            .await,
        401,
        "unauthenticated",
    );

    let verification = app
        .mailer
        .messages()
        .into_iter()
        .find(|m| m.to.as_str() == "invitee@example.com")
        .expect("the invitee's verification mail");
    let link = link_token(&verification, "/auth/verify-email");
    assert_status(
        &app.send(Req::post("/auth/verify-email").json(&json!({ "token": link })))
            .await,
        StatusCode::OK,
    );
    let response = accept(&app, &invitee, &token).await;
    assert_status(&response, StatusCode::OK);
    assert_eq!(
        json_of(&response),
        json!({ "org_id": org, "role": "admin" })
    );
    // Joining rotates the session: the old token is refused, the new one has the org.
    assert_problem(&app.session(&invitee.token).await, 401, "unauthenticated");
    let invitee = Person {
        token: session_token(&response),
        ..invitee
    };
    let session = json_of(&app.session(&invitee.token).await);
    assert_eq!(session["org"]["id"], org.as_str());
    assert_eq!(session["role"], "admin");
    assert!(
        session["permissions"]
            .as_array()
            .expect("permissions")
            .contains(&json!("members:manage"))
    );

    assert_problem(&accept(&app, &invitee, &token).await, 400, "invalid_link");
    let listed = json_of(&members(&app, &org, &invitee).await);
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 2);
    for member in listed {
        assert_keys(
            member,
            &[
                "user_id",
                "email",
                "name",
                "role",
                "joined_at",
                "mfa_enabled",
            ],
        );
        time_of(&member["joined_at"]);
    }
    assert_eq!(listed[0]["user_id"], owner.id.as_str());
    assert_eq!(listed[0]["role"], "owner");
    assert_eq!(listed[1]["email"], "invitee@example.com");
    assert_eq!(listed[1]["role"], "admin");
    let pending = json_of(
        &app.send(
            Req::get(&format!("/orgs/{org}/invitations"))
                .cookie(&owner.token)
                .empty(),
        )
        .await,
    );
    assert_eq!(
        pending,
        json!([]),
        "an accepted invitation is no longer pending"
    );
    let kinds = org_audit_kinds(&app, &org).await;
    assert_eq!(
        kinds,
        ["org.created", "member.invited", "invitation.accepted"],
        "{kinds:?}"
    );
}

/// An invitation past its seven days, or revoked, is 400 `invalid_link`. Revoking needs
/// `members:manage` (a member gets 403) and a pending invitation of that organization (else
/// 404); an admin cannot revoke an invitation to a role above theirs.
pub async fn http_org_expired_or_revoked_invitations_are_invalid_links(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let admin = join(&app, &org, &owner, "admin@example.com", "admin").await;
    let member = join(&app, &org, &owner, "member@example.com", "member").await;
    let late = verified(&app, "late@example.com").await;
    let revoked = verified(&app, "revoked@example.com").await;

    let expiring = invitation_token(&app, &org, &owner, "late@example.com", "member").await;
    app.clock.advance(Duration::days(7) + Duration::seconds(1));
    assert_problem(&accept(&app, &late, &expiring).await, 400, "invalid_link");

    let token = invitation_token(&app, &org, &admin, "revoked@example.com", "member").await;
    let owner_invitation = invite(&app, &org, &owner, "boss@example.com", "owner").await;
    assert_status(&owner_invitation, StatusCode::CREATED);
    let owner_invitation = json_of(&owner_invitation)["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let pending = json_of(
        &app.send(
            Req::get(&format!("/orgs/{org}/invitations"))
                .cookie(&admin.token)
                .empty(),
        )
        .await,
    );
    let ids: Vec<&str> = pending
        .as_array()
        .expect("an array")
        .iter()
        .map(|i| i["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids.len(), 2, "the expired one is not pending: {pending}");
    let revocable = ids
        .iter()
        .find(|id| **id != owner_invitation)
        .expect("the member invitation")
        .to_string();

    let revoke = |by: &Person, id: &str| {
        app.send(
            Req::delete(&format!("/orgs/{org}/invitations/{id}"))
                .cookie(&by.token)
                .empty(),
        )
    };
    assert_problem(
        &app.send(
            Req::get(&format!("/orgs/{org}/invitations"))
                .cookie(&member.token)
                .empty(),
        )
        .await,
        403,
        "forbidden",
    );
    assert_problem(&revoke(&member, &revocable).await, 403, "forbidden");
    assert_problem(&revoke(&admin, &owner_invitation).await, 403, "forbidden");
    assert_status(&revoke(&admin, &revocable).await, StatusCode::NO_CONTENT);
    assert_problem(&revoke(&admin, &revocable).await, 404, "not_found");
    assert_problem(
        &revoke(&admin, &InvitationId::new().to_string()).await,
        404,
        "not_found",
    );
    assert_problem(&revoke(&admin, "not-an-id").await, 404, "not_found");
    assert_problem(&accept(&app, &revoked, &token).await, 400, "invalid_link");
    assert_status(
        &revoke(&owner, &owner_invitation).await,
        StatusCode::NO_CONTENT,
    );

    let kinds = org_audit_kinds(&app, &org).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "invitation.revoked").count(),
        2,
        "{kinds:?}"
    );
}

/// Only `members:manage` invites (a member gets 403), nobody invites above their role (an
/// admin inviting an owner gets 403, an owner may), an unknown role or a malformed address
/// is 400 `invalid_request`, a member's address is 409 `conflict`, and a non-member — or an
/// organization that does not exist — is 403 `forbidden` alike.
pub async fn http_org_inviters_cannot_invite_above_their_role(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let admin = join(&app, &org, &owner, "admin@example.com", "admin").await;
    let member = join(&app, &org, &owner, "member@example.com", "member").await;
    let outsider = verified(&app, "outsider@example.com").await;
    create_org(&app, &outsider, "Elsewhere").await;

    for (by, role, status) in [
        (&owner, "owner", 201),
        (&owner, "admin", 201),
        (&owner, "member", 201),
        (&admin, "owner", 403),
        (&admin, "admin", 201),
        (&admin, "member", 201),
        (&member, "owner", 403),
        (&member, "admin", 403),
        (&member, "member", 403),
        (&outsider, "member", 403),
    ] {
        let email = format!("new-{role}-by-{}", by.email);
        let response = invite(&app, &org, by, &email, role).await;
        if status == 201 {
            assert_status(&response, StatusCode::CREATED);
        } else {
            assert_problem(&response, status, "forbidden");
        }
    }
    for role in ["superuser", "Not A Role"] {
        assert_problem(
            &invite(&app, &org, &owner, "x@example.com", role).await,
            400,
            "invalid_request",
        );
    }
    assert_problem(
        &invite(&app, &org, &admin, "not an address", "member").await,
        400,
        "invalid_request",
    );
    assert_problem(
        &invite(&app, &org, &admin, "MEMBER@example.com", "member").await,
        409,
        "conflict",
    );
    for other in [OrgId::new().to_string(), "not-an-id".to_owned()] {
        assert_problem(
            &invite(&app, &other, &owner, "x@example.com", "member").await,
            403,
            "forbidden",
        );
        assert_problem(&members(&app, &other, &owner).await, 403, "forbidden");
    }
    assert_problem(&members(&app, &org, &outsider).await, 403, "forbidden");
    assert_status(&members(&app, &org, &member).await, StatusCode::OK);
}

/// Role changes: an admin moves others between member and admin; only an owner grants or
/// removes owner; the last owner cannot be demoted (409 `last_owner`); an unknown role is 400,
/// a non-member 404, a member 403. Each change is audited with the old and new role, and the
/// member's session sees the new role at once.
pub async fn http_org_role_changes_follow_the_owner_rules(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let admin = join(&app, &org, &owner, "admin@example.com", "admin").await;
    let member = join(&app, &org, &owner, "member@example.com", "member").await;
    let other = join(&app, &org, &owner, "other@example.com", "member").await;

    let response = set_role(&app, &org, &admin, &member.id, "admin").await;
    assert_status(&response, StatusCode::OK);
    let body = json_of(&response);
    assert_keys(
        &body,
        &[
            "user_id",
            "email",
            "name",
            "role",
            "joined_at",
            "mfa_enabled",
        ],
    );
    assert_eq!(body["role"], "admin");
    assert_eq!(json_of(&app.session(&member.token).await)["role"], "admin");
    assert_status(
        &set_role(&app, &org, &admin, &member.id, "member").await,
        StatusCode::OK,
    );
    assert_eq!(json_of(&app.session(&member.token).await)["role"], "member");

    assert_problem(
        &set_role(&app, &org, &admin, &member.id, "owner").await,
        403,
        "forbidden",
    );
    assert_problem(
        &set_role(&app, &org, &admin, &admin.id, "owner").await,
        403,
        "forbidden",
    );
    assert_problem(
        &set_role(&app, &org, &admin, &owner.id, "admin").await,
        403,
        "forbidden",
    );
    assert_problem(
        &set_role(&app, &org, &member, &other.id, "admin").await,
        403,
        "forbidden",
    );
    assert_problem(
        &set_role(&app, &org, &member, &member.id, "admin").await,
        403,
        "forbidden",
    );
    assert_problem(
        &set_role(&app, &org, &owner, &member.id, "superuser").await,
        400,
        "invalid_request",
    );
    assert_problem(
        &set_role(&app, &org, &owner, &UserId::new().to_string(), "admin").await,
        404,
        "not_found",
    );
    assert_problem(
        &set_role(&app, &org, &owner, &owner.id, "admin").await,
        409,
        "last_owner",
    );
    assert_eq!(stored_role(&app, &org, &owner).await, Some(Role::OWNER));

    // An owner grants owner, and demotes another owner.
    assert_status(
        &set_role(&app, &org, &owner, &admin.id, "owner").await,
        StatusCode::OK,
    );
    assert_problem(
        &set_role(&app, &org, &member, &admin.id, "member").await,
        403,
        "forbidden",
    );
    assert_status(
        &set_role(&app, &org, &admin, &owner.id, "member").await,
        StatusCode::OK,
    );
    assert_eq!(stored_role(&app, &org, &owner).await, Some(Role::MEMBER));
    // The former owner has no say over owners now.
    assert_problem(
        &set_role(&app, &org, &owner, &admin.id, "member").await,
        403,
        "forbidden",
    );
    assert_problem(
        &set_role(&app, &org, &admin, &admin.id, "member").await,
        409,
        "last_owner",
    );

    let events = store
        .audit_events(&AuditQuery {
            org_id: Some(org.parse().expect("an org id")),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .expect("audit_events");
    let changes: Vec<(String, String)> = events
        .iter()
        .rev()
        .filter(|e| e.kind == "member.role_changed")
        .map(|e| {
            (
                e.data["from"].as_str().unwrap_or_default().to_owned(),
                e.data["to"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("member", "admin"),
        ("admin", "member"),
        ("admin", "owner"),
        ("owner", "member"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(changes, expected);
}

/// Removal and leaving: an admin removes members and admins but not owners; a member removes
/// nobody but may leave; the last owner cannot leave (409 `last_owner`). A removed member loses
/// the organization at once — their session no longer carries it, its routes answer 403 — and
/// their API tokens for it are revoked.
pub async fn http_org_removal_and_leaving_follow_the_owner_rules(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let org_id: OrgId = org.parse().expect("an org id");
    let admin = join(&app, &org, &owner, "admin@example.com", "admin").await;
    let second_admin = join(&app, &org, &owner, "admin2@example.com", "admin").await;
    let member = join(&app, &org, &owner, "member@example.com", "member").await;
    let leaver = join(&app, &org, &owner, "leaver@example.com", "member").await;
    let token = fixtures::api_token(org_id, member.user_id(), app.clock.now());
    store
        .create_api_token(&token)
        .await
        .expect("create_api_token");
    assert_eq!(
        json_of(&app.session(&member.token).await)["org"]["id"],
        org.as_str()
    );

    assert_problem(
        &remove(&app, &org, &member, &leaver.id).await,
        403,
        "forbidden",
    );
    assert_problem(
        &remove(&app, &org, &admin, &owner.id).await,
        403,
        "forbidden",
    );
    assert_problem(
        &remove(&app, &org, &admin, &UserId::new().to_string()).await,
        404,
        "not_found",
    );
    assert_status(
        &remove(&app, &org, &admin, &member.id).await,
        StatusCode::NO_CONTENT,
    );
    let session = json_of(&app.session(&member.token).await);
    assert_eq!(session["org"], Value::Null, "{session}");
    assert_eq!(session["role"], Value::Null);
    assert_eq!(session["permissions"], json!([]));
    assert_problem(&members(&app, &org, &member).await, 403, "forbidden");
    assert_problem(
        &app.send(
            Req::post("/auth/active-org")
                .cookie(&member.token)
                .json(&json!({ "org_id": org })),
        )
        .await,
        403,
        "forbidden",
    );
    let record = store
        .api_token(token.id)
        .await
        .expect("api_token")
        .expect("the record stays, for audit");
    assert!(record.revoked_at.is_some(), "the member's token is revoked");
    assert_problem(
        &remove(&app, &org, &admin, &member.id).await,
        404,
        "not_found",
    );

    assert_status(
        &remove(&app, &org, &admin, &second_admin.id).await,
        StatusCode::NO_CONTENT,
    );
    assert_status(
        &remove(&app, &org, &leaver, &leaver.id).await,
        StatusCode::NO_CONTENT,
    );
    assert_problem(
        &remove(&app, &org, &owner, &owner.id).await,
        409,
        "last_owner",
    );
    assert_status(
        &remove(&app, &org, &owner, &admin.id).await,
        StatusCode::NO_CONTENT,
    );
    assert_eq!(owners(&*store, org_id).await, vec![owner.user_id()]);
    let listed = json_of(&members(&app, &org, &owner).await);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    let kinds = org_audit_kinds(&app, &org).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "member.removed").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "member.left").count(),
        1,
        "{kinds:?}"
    );
}

/// `POST /orgs/{org_id}/transfer {user_id}`: only an owner transfers (an admin gets 403), to a
/// member (else 404) other than themselves (400); the target becomes owner and the former owner
/// admin. Deleting the organization needs `org:delete`: the new owner may, the admin may not;
/// afterwards nobody's session carries it.
pub async fn http_org_ownership_transfer_and_deletion_need_an_owner(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let org_id: OrgId = org.parse().expect("an org id");
    let admin = join(&app, &org, &owner, "admin@example.com", "admin").await;
    let member = join(&app, &org, &owner, "member@example.com", "member").await;
    let transfer = |by: &Person, to: &str| {
        app.send(
            Req::post(&format!("/orgs/{org}/transfer"))
                .cookie(&by.token)
                .json(&json!({ "user_id": to })),
        )
    };

    assert_problem(&transfer(&admin, &member.id).await, 403, "forbidden");
    assert_problem(
        &transfer(&owner, &UserId::new().to_string()).await,
        404,
        "not_found",
    );
    assert_problem(&transfer(&owner, &owner.id).await, 400, "invalid_request");
    let response = transfer(&owner, &member.id).await;
    assert_status(&response, StatusCode::OK);
    // The owner's role changed: their session goes on under a new id.
    assert_problem(&app.session(&owner.token).await, 401, "unauthenticated");
    let owner = Person {
        token: session_token(&response),
        ..owner
    };
    let body = json_of(&response);
    assert_eq!(body["to"]["user_id"], member.id.as_str());
    assert_eq!(body["to"]["role"], "owner");
    assert_eq!(body["from"]["role"], "admin");
    assert_eq!(owners(&*store, org_id).await, vec![member.user_id()]);
    assert_eq!(stored_role(&app, &org, &owner).await, Some(Role::ADMIN));
    assert_eq!(json_of(&app.session(&member.token).await)["role"], "owner");
    assert!(
        org_audit_kinds(&app, &org)
            .await
            .contains(&"org.ownership_transferred".to_owned())
    );

    let delete = |by: &Person| {
        app.send(
            Req::delete(&format!("/orgs/{org}"))
                .cookie(&by.token)
                .empty(),
        )
    };
    assert_problem(&delete(&owner).await, 403, "forbidden");
    assert_status(&delete(&member).await, StatusCode::NO_CONTENT);
    assert_eq!(
        store.organization(org_id).await.expect("organization"),
        None
    );
    for person in [&owner, &admin, &member] {
        let session = json_of(&app.session(&person.token).await);
        assert_eq!(session["org"], Value::Null, "{session}");
        assert_problem(&members(&app, &org, person).await, 403, "forbidden");
    }
}

/// Two owners demote each other at the same moment, over the HTTP routes, many times: each
/// time exactly one request succeeds, the other is refused (409 `last_owner`, or 403 if it
/// saw the demotion first), and exactly one owner remains.
pub async fn http_org_owners_demoting_each_other_at_once_leave_one_owner(
    store: Arc<dyn AuthStore>,
) {
    let app = Arc::new(app(&store));
    let first = verified(&app, "first@example.com").await;
    let mut second = verified(&app, "second@example.com").await;
    for round in 0..OWNER_ROUNDS {
        let org = create_org(&app, &first, &format!("Race {round}")).await;
        let token = invitation_token(&app, &org, &first, &second.email, "owner").await;
        let accepted = accept(&app, &second, &token).await;
        assert_status(&accepted, StatusCode::OK);
        // Joining rotates the session.
        second.token = session_token(&accepted);
        let pair = [
            (first.clone(), second.id.clone()),
            (second.clone(), first.id.clone()),
        ];
        let results = race(2, |i| {
            let app = Arc::clone(&app);
            let org = org.clone();
            let (by, target) = pair[i].clone();
            async move {
                let response = set_role(&app, &org, &by, &target, "admin").await;
                let code = serde_json::from_slice::<Value>(response.body())
                    .ok()
                    .and_then(|b| b["code"].as_str().map(str::to_owned));
                (response.status().as_u16(), code)
            }
        })
        .await;
        let won = results.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(
            won, 1,
            "round {round}: exactly one demotion wins: {results:?}"
        );
        for (status, code) in &results {
            assert!(
                *status == 200
                    || (*status == 409 && code.as_deref() == Some("last_owner"))
                    || (*status == 403 && code.as_deref() == Some("forbidden")),
                "round {round}: {results:?}"
            );
        }
        let org_id: OrgId = org.parse().expect("an org id");
        assert_eq!(
            owners(&*store, org_id).await.len(),
            1,
            "round {round}: one owner remains"
        );
    }
}

/// Sixteen sessions of the invitee accept one invitation at the same moment: exactly one gets
/// 200, the others 400 `invalid_link` (or 409 `conflict` once the membership exists), and there
/// is one membership with the invited role.
pub async fn http_org_concurrent_accepts_of_one_invitation_succeed_once(store: Arc<dyn AuthStore>) {
    let app = Arc::new(app(&store));
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let invitee = verified(&app, "invitee@example.com").await;
    let token = invitation_token(&app, &org, &owner, &invitee.email, "admin").await;
    let mut sessions = Vec::with_capacity(RACERS);
    for _ in 0..RACERS {
        sessions.push(Person {
            token: app.signed_in(&invitee.email, PASSWORD).await,
            ..invitee.clone()
        });
    }
    let results = race(RACERS, |i| {
        let app = Arc::clone(&app);
        let person = sessions[i].clone();
        let token = token.clone();
        async move {
            let response = accept(&app, &person, &token).await;
            let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
            (response.status().as_u16(), body)
        }
    })
    .await;
    let winners: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one accept wins: {results:?}");
    assert_eq!(winners[0].1, json!({ "org_id": org, "role": "admin" }));
    for (status, body) in &results {
        assert!(
            *status == 200
                || (*status == 400 && body["code"] == "invalid_link")
                || (*status == 409 && body["code"] == "conflict"),
            "a loser gets invalid_link or conflict: {results:?}"
        );
    }
    let org_id: OrgId = org.parse().expect("an org id");
    let listed = store.members(org_id).await.expect("members");
    assert_eq!(listed.len(), 2);
    assert_eq!(stored_role(&app, &org, &invitee).await, Some(Role::ADMIN));
    let invitation = store
        .invitation_by_token_hash(&TokenHash::of(&token))
        .await
        .expect("invitation_by_token_hash")
        .expect("the invitation");
    assert_eq!(invitation.accepted_by, Some(invitee.user_id()));
}

/// A member is removed while fifteen of their tasks keep asking for the organization's members
/// and their session (the clock moving past the session cache's TTL, so requests also read the
/// store): every request that starts after the removal answered is refused (403, and a session
/// without the organization) — no request in flight during the removal puts the old
/// membership back into the cache.
pub async fn http_org_member_removed_during_their_requests_loses_access_at_once(
    store: Arc<dyn AuthStore>,
) {
    const REQUESTS: usize = 24;
    let app = Arc::new(app(&store));
    let owner = verified(&app, "owner@example.com").await;
    let org = create_org(&app, &owner, "Acme").await;
    let member = join(&app, &org, &owner, "member@example.com", "member").await;
    let removed = Arc::new(AtomicBool::new(false));
    let results = race(RACERS, |i| {
        let app = Arc::clone(&app);
        let org = org.clone();
        let (owner, member) = (owner.clone(), member.clone());
        let removed = Arc::clone(&removed);
        async move {
            let mut seen = Vec::new();
            if i == 0 {
                tokio::task::yield_now().await;
                let response = remove(&app, &org, &owner, &member.id).await;
                assert_status(&response, StatusCode::NO_CONTENT);
                removed.store(true, Ordering::SeqCst);
                return seen;
            }
            for n in 0..REQUESTS {
                if n % 3 == 0 {
                    app.clock.advance(Duration::seconds(2));
                }
                let after_removal = removed.load(Ordering::SeqCst);
                let (path, allowed) = if n % 2 == 0 {
                    let response = members(&app, &org, &member).await;
                    let status = response.status().as_u16();
                    assert!(status == 200 || status == 403, "members: {status}");
                    ("members", status == 200)
                } else {
                    let response = app.session(&member.token).await;
                    assert_status(&response, StatusCode::OK);
                    let session = json_of(&response);
                    ("session", session["org"]["id"] == org.as_str())
                };
                seen.push((after_removal, path, allowed));
            }
            seen
        }
    })
    .await;
    for (task, seen) in results.iter().enumerate() {
        for (n, (after_removal, path, allowed)) in seen.iter().enumerate() {
            assert!(
                !(*after_removal && *allowed),
                "task {task}, request {n} ({path}) started after the removal and still had access"
            );
        }
    }
    let session = json_of(&app.session(&member.token).await);
    assert_eq!(session["org"], Value::Null);
    assert_eq!(session["permissions"], json!([]));
    assert_problem(&members(&app, &org, &member).await, 403, "forbidden");
}

/// How many times an admin's change races an owner's promotion of the same member.
const PROMOTION_ROUNDS: usize = 16;

/// An admin demotes (or removes) a fellow admin at the moment an owner promotes that admin to
/// owner, many times. The rule "only an owner touches an owner" is judged on the target's role
/// when the change is made, not on an earlier read: whichever order the two land in, the
/// target ends an owner and a member of the organization, and the admin's request is either
/// first (200/204, then overwritten by the promotion) or refused (403 `forbidden`).
pub async fn http_org_admin_cannot_touch_a_member_promoted_to_owner_at_once(
    store: Arc<dyn AuthStore>,
) {
    let app = Arc::new(app(&store));
    let owner = verified(&app, "owner@example.com").await;
    let mut admin = verified(&app, "admin@example.com").await;
    let mut target = verified(&app, "target@example.com").await;
    for round in 0..PROMOTION_ROUNDS {
        let org = create_org(&app, &owner, &format!("Promotion {round}")).await;
        for person in [&mut admin, &mut target] {
            let token = invitation_token(&app, &org, &owner, &person.email, "admin").await;
            let accepted = accept(&app, person, &token).await;
            assert_status(&accepted, StatusCode::OK);
            // Joining rotates the session.
            person.token = session_token(&accepted);
        }
        let removing = round % 2 == 1;
        let results = race(2, |i| {
            let app = Arc::clone(&app);
            let org = org.clone();
            let (owner, admin, target) = (owner.clone(), admin.clone(), target.clone());
            async move {
                let response = match (i, removing) {
                    (0, _) => set_role(&app, &org, &owner, &target.id, "owner").await,
                    (_, false) => set_role(&app, &org, &admin, &target.id, "member").await,
                    (_, true) => remove(&app, &org, &admin, &target.id).await,
                };
                let code = serde_json::from_slice::<Value>(response.body())
                    .ok()
                    .and_then(|b| b["code"].as_str().map(str::to_owned));
                (response.status().as_u16(), code)
            }
        })
        .await;
        let (status, code) = &results[1];
        assert!(
            *status == 200
                || *status == 204
                || (*status == 403 && code.as_deref() == Some("forbidden")),
            "round {round}: {results:?}"
        );
        if removing && results[0].0 == 404 {
            // The removal came first; the promotion found no member.
            assert_eq!(*status, 204, "round {round}: {results:?}");
            assert_eq!(stored_role(&app, &org, &target).await, None);
            continue;
        }
        assert_eq!(
            results[0].0, 200,
            "round {round}: the promotion: {results:?}"
        );
        assert_eq!(
            stored_role(&app, &org, &target).await,
            Some(Role::OWNER),
            "round {round} ({}): an admin changed an owner: {results:?}",
            if removing { "removal" } else { "demotion" }
        );
    }
}
