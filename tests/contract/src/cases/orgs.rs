//! Organizations, members, roles and invitations: the permission matrix of every role on every
//! organization route and the example's API, the rules about owners, invitations, and the
//! members and invitation pages.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::flows::{self, Account};
use crate::{AppUnderTest, Method, Reply, SessionCookie, check, token_from};

/// The link of the invitation mail to `email`: the newest mail to that address whose link is
/// neither a verification nor a reset link.
async fn invitation_token(app: &AppUnderTest, email: &str) -> String {
    let mail = app
        .latest_mail_matching(email, |mail| {
            mail.action_url.as_deref().is_some_and(|url| {
                !url.contains("/auth/verify-email?") && !url.contains("/reset-password?")
            })
        })
        .await;
    token_from(mail.action_url())
}

/// `POST /orgs/{org}/invitations {email, role}` with `cookie`.
async fn invite(
    app: &AppUnderTest,
    org: &str,
    cookie: &SessionCookie,
    email: &str,
    role: &str,
) -> Reply {
    app.client()
        .post_json_with(
            &format!("/orgs/{org}/invitations"),
            &json!({"email": email, "role": role}),
            cookie,
        )
        .await
}

/// `POST /invitations/accept {token}` with `cookie`.
async fn accept(app: &AppUnderTest, cookie: &SessionCookie, token: &str) -> Reply {
    app.client()
        .post_json_with("/invitations/accept", &json!({"token": token}), cookie)
        .await
}

/// `PATCH /orgs/{org}/members/{user} {role}` with `cookie`.
async fn set_role(
    app: &AppUnderTest,
    org: &str,
    cookie: &SessionCookie,
    user: &str,
    role: &str,
) -> Reply {
    app.client()
        .request(Method::PATCH, &format!("/orgs/{org}/members/{user}"))
        .app_origin()
        .cookie(cookie)
        .json(&json!({"role": role}))
        .send()
        .await
}

/// `DELETE /orgs/{org}/members/{user}` with `cookie`.
async fn remove(app: &AppUnderTest, org: &str, cookie: &SessionCookie, user: &str) -> Reply {
    app.client()
        .delete_with(&format!("/orgs/{org}/members/{user}"), cookie)
        .await
}

/// `GET /orgs/{org}/members` with `cookie`.
async fn members(app: &AppUnderTest, org: &str, cookie: &SessionCookie) -> Reply {
    app.client()
        .get_with(&format!("/orgs/{org}/members"), cookie)
        .await
}

/// The role of `user` in `org` as `cookie`'s member sees it, `None` for a non-member.
async fn role_in(
    app: &AppUnderTest,
    org: &str,
    cookie: &SessionCookie,
    user: &str,
) -> Option<String> {
    let listed = members(app, org, cookie).await.json_with(200);
    listed
        .as_array()
        .unwrap_or_else(|| panic!("members is an array: {listed}"))
        .iter()
        .find(|m| m["user_id"] == user)
        .map(|m| m["role"].as_str().expect("a role").to_owned())
}

/// Invites `email` into `org` as `role` (by `inviter`), signs them up, verifies the address,
/// accepts the mailed invitation and makes `org` the session's active organization.
pub(super) async fn join(
    app: &AppUnderTest,
    org: &str,
    inviter: &SessionCookie,
    email: &str,
    role: &str,
) -> Account {
    let invitation = invite(app, org, inviter, email, role).await.json_with(201);
    check::exact_keys(
        &invitation,
        &["id", "email", "role", "expires_at"],
        "an invitation",
    );
    assert_eq!(invitation["email"], email, "{invitation}");
    assert_eq!(invitation["role"], role, "{invitation}");
    let mut account = flows::sign_up(app, email).await;
    flows::verify_email(app, &account).await;
    let token = invitation_token(app, email).await;
    let reply = accept(app, &account.cookie, &token).await;
    let accepted = reply.json_with(200);
    assert_eq!(accepted, json!({"org_id": org, "role": role}), "{accepted}");
    // Joining and switching organizations each rotate the session.
    account.cookie = flows::rotated_cookie(&reply, &account.cookie);
    let reply = app
        .client()
        .post_json_with("/auth/active-org", &json!({"org_id": org}), &account.cookie)
        .await
        .expect(200);
    account.cookie = flows::rotated_cookie(&reply, &account.cookie);
    account
}

/// An owner's organization with an admin and a member who joined by invitation, and a
/// signed-in outsider.
struct Team {
    org: String,
    owner: Account,
    admin: Account,
    member: Account,
    outsider: Account,
}

impl Team {
    async fn new(app: &AppUnderTest) -> Self {
        let owner = flows::sign_up(app, "owner@example.com").await;
        let org = flows::create_org(app, &owner.cookie, "Acme Inc").await["id"]
            .as_str()
            .expect("an org id")
            .to_owned();
        let admin = join(app, &org, &owner.cookie, "admin@example.com", "admin").await;
        let member = join(app, &org, &owner.cookie, "member@example.com", "member").await;
        let outsider = flows::sign_up(app, "outsider@example.com").await;
        Self {
            org,
            owner,
            admin,
            member,
            outsider,
        }
    }
}

/// The callers of the matrix, in its column order.
const CALLERS: [&str; 4] = ["owner", "admin", "member", "outsider"];

/// One row of the matrix: what is asked.
#[derive(Debug, Clone, Copy)]
enum Ask {
    ListMembers,
    ListInvitations,
    /// Invite a new address to this role.
    Invite(&'static str),
    /// Revoke a pending member invitation the owner made.
    RevokeInvitation,
    /// Change the role of a member who has the first role to the second.
    SetRole(&'static str, &'static str),
    /// Remove a member who has this role.
    Remove(&'static str),
    Projects,
    Deploy,
    Billing,
}

/// An expected answer: a success status, or 403 `forbidden`.
const fn ok(status: u16) -> Option<u16> {
    Some(status)
}
const NO: Option<u16> = None;

/// Every organization route and every API route of the example, for each caller: the
/// contract's permissions (member: read and write projects and deployments, `members:read`;
/// admin: + `members:manage`; owner: + `billing:manage`), and its rules (only an owner invites,
/// promotes to, demotes or removes an owner; a non-member is refused alike).
const MATRIX: &[(Ask, [Option<u16>; 4])] = &[
    (Ask::ListMembers, [ok(200), ok(200), ok(200), NO]),
    (Ask::ListInvitations, [ok(200), ok(200), NO, NO]),
    (Ask::Invite("member"), [ok(201), ok(201), NO, NO]),
    (Ask::Invite("admin"), [ok(201), ok(201), NO, NO]),
    (Ask::Invite("owner"), [ok(201), NO, NO, NO]),
    (Ask::RevokeInvitation, [ok(204), ok(204), NO, NO]),
    (Ask::SetRole("member", "admin"), [ok(200), ok(200), NO, NO]),
    (Ask::SetRole("admin", "member"), [ok(200), ok(200), NO, NO]),
    (Ask::SetRole("member", "owner"), [ok(200), NO, NO, NO]),
    (Ask::SetRole("admin", "owner"), [ok(200), NO, NO, NO]),
    (Ask::SetRole("owner", "admin"), [ok(200), NO, NO, NO]),
    (Ask::SetRole("owner", "member"), [ok(200), NO, NO, NO]),
    (Ask::Remove("member"), [ok(204), ok(204), NO, NO]),
    (Ask::Remove("admin"), [ok(204), ok(204), NO, NO]),
    (Ask::Remove("owner"), [ok(204), NO, NO, NO]),
    (Ask::Projects, [ok(200), ok(200), ok(200), NO]),
    (Ask::Deploy, [ok(201), ok(201), ok(201), NO]),
    (Ask::Billing, [ok(200), NO, NO, NO]),
];

/// What the matrix needs besides the team: fresh members to act on and fresh invitations to
/// revoke, made by the owner as needed and reused while they are unchanged.
struct Fixtures {
    targets: BTreeMap<&'static str, Vec<Account>>,
    invitations: Vec<String>,
    made: usize,
}

impl Fixtures {
    /// A member of the team with `role` whom nobody has acted on yet.
    async fn target(&mut self, app: &AppUnderTest, team: &Team, role: &'static str) -> Account {
        if let Some(account) = self.targets.get_mut(role).and_then(Vec::pop) {
            return account;
        }
        self.made += 1;
        let email = format!("target{}-{role}@example.com", self.made);
        join(app, &team.org, &team.owner.cookie, &email, role).await
    }

    /// A pending member invitation of the team's organization.
    async fn invitation(&mut self, app: &AppUnderTest, team: &Team) -> String {
        if let Some(id) = self.invitations.pop() {
            return id;
        }
        self.made += 1;
        let email = format!("pending{}@example.com", self.made);
        invite(app, &team.org, &team.owner.cookie, &email, "member")
            .await
            .json_with(201)["id"]
            .as_str()
            .expect("an invitation id")
            .to_owned()
    }
}

/// The permission matrix, over HTTP: each caller (owner, admin, member, and a signed-in
/// outsider) × each organization route (list members and invitations, invite to each role,
/// revoke an invitation, change each role, remove each role) and each API route of the
/// example (projects, deployments, billing). A success answers its status; a refusal is 403
/// `forbidden` and changes nothing.
pub async fn permission_matrix_holds_for_every_role_and_route(app: &AppUnderTest) {
    let team = Team::new(app).await;
    let org = team.org.clone();
    let callers = [&team.owner, &team.admin, &team.member, &team.outsider];
    let project_id = app
        .client()
        .get_with("/api/projects", &team.owner.cookie)
        .await
        .json_with(200)
        .as_array()
        .and_then(|p| p.first().map(|p| p["id"].clone()))
        .unwrap_or_else(|| json!(uuid::Uuid::now_v7().to_string()));
    let mut fixtures = Fixtures {
        targets: BTreeMap::new(),
        invitations: Vec::new(),
        made: 0,
    };
    let mut invited = 0;

    for (ask, expected) in MATRIX {
        for (column, caller) in callers.iter().enumerate() {
            let who = CALLERS[column];
            let expected = expected[column];
            let cookie = &caller.cookie;
            let mut target = None;
            let mut revoked = None;
            let reply = match ask {
                Ask::ListMembers => members(app, &org, cookie).await,
                Ask::ListInvitations => {
                    app.client()
                        .get_with(&format!("/orgs/{org}/invitations"), cookie)
                        .await
                }
                Ask::Invite(role) => {
                    invited += 1;
                    let email = format!("invitee{invited}@example.com");
                    invite(app, &org, cookie, &email, role).await
                }
                Ask::RevokeInvitation => {
                    let id = fixtures.invitation(app, &team).await;
                    let reply = app
                        .client()
                        .delete_with(&format!("/orgs/{org}/invitations/{id}"), cookie)
                        .await;
                    revoked = Some(id);
                    reply
                }
                Ask::SetRole(from, to) => {
                    let account = fixtures.target(app, &team, from).await;
                    let reply = set_role(app, &org, cookie, account.id(), to).await;
                    target = Some((*from, account));
                    reply
                }
                Ask::Remove(role) => {
                    let account = fixtures.target(app, &team, role).await;
                    let reply = remove(app, &org, cookie, account.id()).await;
                    target = Some((*role, account));
                    reply
                }
                Ask::Projects => app.client().get_with("/api/projects", cookie).await,
                Ask::Deploy => {
                    app.client()
                        .post_json_with(
                            "/api/deployments",
                            &json!({"project_id": project_id}),
                            cookie,
                        )
                        .await
                }
                Ask::Billing => app.client().get_with("/api/billing", cookie).await,
            };
            let what = format!("{who} × {ask:?}");
            match expected {
                Some(status) => {
                    assert_eq!(reply.status, status, "{what}: expected {status}: {reply}");
                    if status != 204 {
                        let _ = reply.json_with(status);
                    }
                }
                None => {
                    reply.problem(403, "forbidden");
                    // Refused: nothing changed, so the fixture serves the next caller.
                    if let Some((role, account)) = target.take() {
                        let now = role_in(app, &org, &team.owner.cookie, account.id()).await;
                        assert_eq!(now.as_deref(), Some(role), "{what} changed nothing");
                        fixtures.targets.entry(role).or_default().push(account);
                    }
                    if let Some(id) = revoked.take() {
                        fixtures.invitations.push(id);
                    }
                }
            }
            if let (Some(status), Some((_, account))) = (expected, target.as_ref()) {
                let now = role_in(app, &org, &team.owner.cookie, account.id()).await;
                match ask {
                    Ask::SetRole(_, to) => {
                        assert_eq!(now.as_deref(), Some(*to), "{what} ({status}) took effect");
                    }
                    _ => assert_eq!(now, None, "{what} ({status}) took effect"),
                }
            }
        }
    }
    // The team itself is as it was.
    for (account, role) in [
        (&team.owner, "owner"),
        (&team.admin, "admin"),
        (&team.member, "member"),
    ] {
        assert_eq!(
            role_in(app, &org, &team.owner.cookie, account.id())
                .await
                .as_deref(),
            Some(role)
        );
    }
}

/// The member list is `[{user_id, email, name, role, joined_at}]`, oldest first; the pending
/// invitations are listed; each membership shows in `GET /orgs` and the session of the member.
pub async fn members_and_invitations_have_the_contract_shape(app: &AppUnderTest) {
    let team = Team::new(app).await;
    let listed = members(app, &team.org, &team.member.cookie)
        .await
        .json_with(200);
    let listed = listed.as_array().expect("an array").clone();
    let emails: Vec<&str> = listed
        .iter()
        .map(|m| m["email"].as_str().expect("an email"))
        .collect();
    assert_eq!(
        emails,
        [
            "owner@example.com",
            "admin@example.com",
            "member@example.com"
        ]
    );
    for member in &listed {
        check::exact_keys(
            member,
            &[
                "user_id",
                "email",
                "name",
                "role",
                "joined_at",
                "mfa_enabled",
            ],
            "a member",
        );
        check::uuid_v7(&member["user_id"], "a member's user_id");
        check::utc_time(&member["joined_at"], "joined_at");
    }
    assert_eq!(listed[1]["role"], "admin");
    let created = invite(
        app,
        &team.org,
        &team.admin.cookie,
        "later@example.com",
        "member",
    )
    .await
    .json_with(201);
    let expires = check::utc_time(&created["expires_at"], "expires_at");
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!(
        (7 * 24 - 1..=7 * 24).contains(&days),
        "an invitation lasts 7 days: {created}"
    );
    let pending = app
        .client()
        .get_with(
            &format!("/orgs/{}/invitations", team.org),
            &team.owner.cookie,
        )
        .await
        .json_with(200);
    let pending = pending.as_array().expect("an array").clone();
    assert_eq!(
        pending.len(),
        1,
        "accepted invitations are not pending: {pending:?}"
    );
    assert_eq!(pending[0]["id"], created["id"]);
    assert_eq!(pending[0]["email"], "later@example.com");

    let orgs = app
        .client()
        .get_with("/orgs", &team.member.cookie)
        .await
        .json_with(200);
    assert_eq!(orgs.as_array().map(Vec::len), Some(1), "{orgs}");
    assert_eq!(orgs[0]["id"], team.org.as_str());
    assert_eq!(orgs[0]["role"], "member");
    let session = flows::session(app, &team.member.cookie).await;
    assert_eq!(session["org"]["id"], team.org.as_str(), "{session}");
    assert_eq!(session["role"], "member");
}

/// An invitation is accepted once, by a signed-in user whose verified email is the invited
/// one: unverified 403 `email_not_verified`, another user 403 `forbidden`, a garbage, used or
/// revoked token 400 `invalid_link`, without a session 401.
pub async fn invitation_is_accepted_once_by_the_verified_invitee(app: &AppUnderTest) {
    let owner = flows::sign_up(app, "owner@example.com").await;
    let org = flows::create_org(app, &owner.cookie, "Acme Inc").await["id"]
        .as_str()
        .expect("an org id")
        .to_owned();
    invite(app, &org, &owner.cookie, "invitee@example.com", "member")
        .await
        .expect(201);
    let token = invitation_token(app, "invitee@example.com").await;
    let invitee = flows::sign_up(app, "invitee@example.com").await;
    let stranger = flows::sign_up(app, "stranger@example.com").await;
    flows::verify_email(app, &stranger).await;

    accept(app, &invitee.cookie, &token)
        .await
        .problem(403, "email_not_verified");
    accept(app, &stranger.cookie, &token)
        .await
        .problem(403, "forbidden");
    accept(app, &invitee.cookie, "garbage")
        .await
        .problem(400, "invalid_link");
    app.client()
        .post_json("/invitations/accept", &json!({"token": token}))
        .await
        .unauthenticated("unauthenticated");

    flows::verify_email(app, &invitee).await;
    let reply = accept(app, &invitee.cookie, &token).await;
    let accepted = reply.json_with(200);
    assert_eq!(accepted, json!({"org_id": org, "role": "member"}));
    let cookie = flows::rotated_cookie(&reply, &invitee.cookie);
    accept(app, &cookie, &token)
        .await
        .problem(400, "invalid_link");
    assert_eq!(
        role_in(app, &org, &owner.cookie, invitee.id())
            .await
            .as_deref(),
        Some("member")
    );

    let revoked = invite(app, &org, &owner.cookie, "revoked@example.com", "admin")
        .await
        .json_with(201);
    let revoked_token = invitation_token(app, "revoked@example.com").await;
    app.client()
        .delete_with(
            &format!(
                "/orgs/{org}/invitations/{}",
                revoked["id"].as_str().expect("an id")
            ),
            &owner.cookie,
        )
        .await
        .expect(204);
    let late = flows::sign_up(app, "revoked@example.com").await;
    flows::verify_email(app, &late).await;
    accept(app, &late.cookie, &revoked_token)
        .await
        .problem(400, "invalid_link");
}

/// The owner rules: the last owner can be neither demoted nor removed, nor leave (409
/// `last_owner`); an admin can touch no owner and grant no owner; owners promote and demote
/// owners; ownership moves with `POST /orgs/{org_id}/transfer`; a member may leave.
pub async fn role_changes_keep_an_owner_and_only_owners_touch_owners(app: &AppUnderTest) {
    let team = Team::new(app).await;
    let org = &team.org;
    let (owner, admin, member) = (&team.owner, &team.admin, &team.member);

    set_role(app, org, &owner.cookie, owner.id(), "admin")
        .await
        .problem(409, "last_owner");
    remove(app, org, &owner.cookie, owner.id())
        .await
        .problem(409, "last_owner");
    set_role(app, org, &admin.cookie, owner.id(), "member")
        .await
        .problem(403, "forbidden");
    remove(app, org, &admin.cookie, owner.id())
        .await
        .problem(403, "forbidden");
    set_role(app, org, &admin.cookie, member.id(), "owner")
        .await
        .problem(403, "forbidden");
    set_role(app, org, &admin.cookie, admin.id(), "owner")
        .await
        .problem(403, "forbidden");
    invite(app, org, &admin.cookie, "boss@example.com", "owner")
        .await
        .problem(403, "forbidden");
    set_role(app, org, &owner.cookie, member.id(), "superuser")
        .await
        .problem(400, "invalid_request");

    // Admins move others between member and admin.
    let changed = set_role(app, org, &admin.cookie, member.id(), "admin")
        .await
        .json_with(200);
    assert_eq!(changed["role"], "admin", "{changed}");
    assert_eq!(flows::session(app, &member.cookie).await["role"], "admin");
    set_role(app, org, &admin.cookie, member.id(), "member")
        .await
        .expect(200);

    // Owners make owners, and an owner demotes another.
    set_role(app, org, &owner.cookie, admin.id(), "owner")
        .await
        .expect(200);
    set_role(app, org, &admin.cookie, owner.id(), "admin")
        .await
        .expect(200);
    assert_eq!(
        role_in(app, org, &admin.cookie, owner.id())
            .await
            .as_deref(),
        Some("admin")
    );
    set_role(app, org, &admin.cookie, admin.id(), "member")
        .await
        .problem(409, "last_owner");

    // Ownership transfer: only an owner, to a member; the former owner becomes admin.
    app.client()
        .post_json_with(
            &format!("/orgs/{org}/transfer"),
            &json!({"user_id": member.id()}),
            &owner.cookie,
        )
        .await
        .problem(403, "forbidden");
    let reply = app
        .client()
        .post_json_with(
            &format!("/orgs/{org}/transfer"),
            &json!({"user_id": member.id()}),
            &admin.cookie,
        )
        .await
        .expect(200);
    // The former owner's role changed: their session goes on under a new id.
    let admin_cookie = flows::rotated_cookie(&reply, &admin.cookie);
    assert_eq!(
        role_in(app, org, &member.cookie, member.id())
            .await
            .as_deref(),
        Some("owner")
    );
    assert_eq!(
        role_in(app, org, &member.cookie, admin.id())
            .await
            .as_deref(),
        Some("admin")
    );
    let _ = app
        .client()
        .get_with("/api/billing", &member.cookie)
        .await
        .json_with(200);
    app.client()
        .get_with("/api/billing", &admin_cookie)
        .await
        .problem(403, "forbidden");

    // Anyone but the last owner may leave.
    remove(app, org, &owner.cookie, owner.id())
        .await
        .expect(204);
    remove(app, org, &member.cookie, member.id())
        .await
        .problem(409, "last_owner");
    let session = flows::session(app, &owner.cookie).await;
    assert_eq!(session["org"], Value::Null, "{session}");
}

/// A removed member loses the organization at once: the next request of their session has no
/// active organization and no permissions, the API and the organization's routes answer 403.
pub async fn removed_member_loses_access_at_once(app: &AppUnderTest) {
    let team = Team::new(app).await;
    let member = &team.member;
    let _ = app
        .client()
        .get_with("/api/projects", &member.cookie)
        .await
        .json_with(200);
    remove(app, &team.org, &team.admin.cookie, member.id())
        .await
        .expect(204);
    app.client()
        .get_with("/api/projects", &member.cookie)
        .await
        .problem(403, "forbidden");
    members(app, &team.org, &member.cookie)
        .await
        .problem(403, "forbidden");
    let session = flows::session(app, &member.cookie).await;
    assert_eq!(session["org"], Value::Null, "{session}");
    assert_eq!(session["permissions"], json!([]), "{session}");
    app.client()
        .post_json_with(
            "/auth/active-org",
            &json!({"org_id": team.org}),
            &member.cookie,
        )
        .await
        .problem(403, "forbidden");
}

/// The mailed invitation link opens a page: for a visitor, links to sign in or sign up that
/// come back to it; for a signed-in user, a form that posts the token to `/invitations/accept`.
/// `/dashboard/members` lists the members, and shows admins the invitation form.
pub async fn invitation_link_and_members_page_work_in_a_browser(app: &AppUnderTest) {
    let team = Team::new(app).await;
    invite(
        app,
        &team.org,
        &team.owner.cookie,
        "guest@example.com",
        "member",
    )
    .await
    .expect(201);
    let mail = app.latest_mail_to("guest@example.com").await;
    let link = mail.action_url().to_owned();
    let token = token_from(&link);
    assert!(
        link.starts_with(app.origin()),
        "the link is on the app: {link}"
    );

    let page = app.client().get(&link).accept_html().send().await;
    assert_eq!(page.status, 200, "{page}");
    assert_eq!(page.media_type(), "text/html", "{page}");
    let html = page.text();
    assert!(html.contains("/sign-in?next="), "a way to sign in: {page}");
    let guest = flows::sign_up(app, "guest@example.com").await;
    let page = app
        .client()
        .get(&link)
        .accept_html()
        .cookie(&guest.cookie)
        .send()
        .await;
    let html = page.text();
    assert!(
        html.contains("data-endpoint=\"/invitations/accept\"") && html.contains(&token),
        "a form that accepts: {page}"
    );

    let page = app
        .client()
        .get("/dashboard/members")
        .accept_html()
        .cookie(&team.admin.cookie)
        .send()
        .await;
    assert_eq!(page.status, 200, "{page}");
    let html = page.text();
    for email in [
        "owner@example.com",
        "admin@example.com",
        "member@example.com",
    ] {
        assert!(html.contains(email), "{email} is listed: {page}");
    }
    assert!(
        html.contains("id=\"invite-form\"")
            && html.contains(&format!("/orgs/{}/invitations", team.org))
            && html.contains("guest@example.com"),
        "admins get the invitation form and the pending invitations: {page}"
    );
    let page = app
        .client()
        .get("/dashboard/members")
        .accept_html()
        .cookie(&team.member.cookie)
        .send()
        .await;
    let html = page.text();
    assert!(html.contains("admin@example.com"), "{page}");
    assert!(
        !html.contains("id=\"invite-form\""),
        "members do not invite: {page}"
    );
}

/// `POST /api/tokens` with `cookie` for `scopes`; the token.
async fn token_for(app: &AppUnderTest, cookie: &SessionCookie, scopes: &[&str]) -> String {
    let created = app
        .client()
        .post_json_with(
            "/api/tokens",
            &json!({"name": "ci", "scopes": scopes}),
            cookie,
        )
        .await
        .json_with(201);
    created["token"].as_str().expect("the token").to_owned()
}

/// An API token acts only within its scopes, on its organization's resources. Routes that act
/// on the user rather than on the organization (create or list organizations, leave one,
/// transfer ownership, switch the active one, sessions, password, tokens, linked providers,
/// invitations to accept) need a browser session: 403 `forbidden` for a Bearer token, whatever
/// its scopes. Organization routes answer a token without their permission 403
/// `insufficient_scope`, and one with it as they would a session.
pub async fn api_token_cannot_act_on_its_owner_beyond_its_scope(app: &AppUnderTest) {
    let owner = flows::sign_up(app, "ada@example.com").await;
    let org = flows::create_org(app, &owner.cookie, "Acme").await;
    let org = org["id"].as_str().expect("org id").to_owned();
    let member = join(app, &org, &owner.cookie, "bob@example.com", "member").await;
    let member_token = token_for(app, &member.cookie, &["read:projects"]).await;
    let owner_token = token_for(app, &owner.cookie, &["read:projects"]).await;
    let client = app.client();
    let bearer = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let request = client.request(method, path).bearer(token);
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    };
    for (token, own, other) in [
        (&member_token, &member, &owner),
        (&owner_token, &owner, &member),
    ] {
        let session_only: Vec<(Method, String, Option<Value>)> = vec![
            (Method::POST, "/orgs".into(), Some(json!({"name": "Evil"}))),
            (Method::GET, "/orgs".into(), None),
            // Leaving the organization.
            (
                Method::DELETE,
                format!("/orgs/{org}/members/{}", own.id()),
                None,
            ),
            (
                Method::POST,
                format!("/orgs/{org}/transfer"),
                Some(json!({"user_id": member.id()})),
            ),
            (
                Method::POST,
                "/auth/active-org".into(),
                Some(json!({"org_id": null})),
            ),
            (Method::GET, "/auth/session".into(), None),
            (Method::GET, "/auth/sessions".into(), None),
            (
                Method::DELETE,
                "/auth/sessions/01890000-0000-7000-8000-000000000000".into(),
                None,
            ),
            (Method::POST, "/auth/sign-out".into(), None),
            (Method::POST, "/auth/sign-out-everywhere".into(), None),
            (Method::POST, "/auth/verify-email/send".into(), None),
            (
                Method::POST,
                "/auth/change-password".into(),
                Some(json!({"current_password": "x", "new_password": "y"})),
            ),
            (
                Method::POST,
                "/api/tokens".into(),
                Some(json!({"name": "more", "scopes": ["read:projects"]})),
            ),
            (Method::GET, "/api/tokens".into(), None),
            (
                Method::DELETE,
                "/api/tokens/01890000-0000-7000-8000-000000000000".into(),
                None,
            ),
            (
                Method::POST,
                "/invitations/accept".into(),
                Some(json!({"token": "x"})),
            ),
            (Method::GET, "/auth/accounts".into(), None),
            (Method::DELETE, "/auth/accounts/google".into(), None),
        ];
        for (method, path, body) in session_only {
            bearer(method.clone(), &path, token, body)
                .send()
                .await
                .problem(403, "forbidden");
        }
        // Organization routes: the token lacks their permission.
        for (method, path, body) in [
            (Method::GET, format!("/orgs/{org}/members"), None),
            (Method::GET, format!("/orgs/{org}/invitations"), None),
            (
                Method::POST,
                format!("/orgs/{org}/invitations"),
                Some(json!({"email": "eve@example.com", "role": "member"})),
            ),
            (
                Method::PATCH,
                format!("/orgs/{org}/members/{}", member.id()),
                Some(json!({"role": "admin"})),
            ),
            (
                Method::DELETE,
                format!("/orgs/{org}/members/{}", other.id()),
                None,
            ),
            (Method::DELETE, format!("/orgs/{org}"), None),
        ] {
            bearer(method.clone(), &path, token, body)
                .send()
                .await
                .problem(403, "insufficient_scope");
        }
        // What the scope allows still works.
        let projects = bearer(Method::GET, "/api/projects", token, None)
            .send()
            .await
            .json_with(200);
        assert!(projects.is_array(), "{projects}");
    }
    // Nothing changed: both are still members with their roles, the owner has one organization.
    assert_eq!(
        role_in(app, &org, &owner.cookie, member.id())
            .await
            .as_deref(),
        Some("member")
    );
    assert_eq!(
        role_in(app, &org, &owner.cookie, owner.id())
            .await
            .as_deref(),
        Some("owner")
    );
    let orgs = client.get_with("/orgs", &owner.cookie).await.json_with(200);
    assert_eq!(orgs.as_array().map(Vec::len), Some(1), "{orgs}");
    // A token with a scope that names an organization route may use it.
    let reader = token_for(app, &owner.cookie, &["members:read"]).await;
    let listed = bearer(Method::GET, &format!("/orgs/{org}/members"), &reader, None)
        .send()
        .await
        .json_with(200);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
}
