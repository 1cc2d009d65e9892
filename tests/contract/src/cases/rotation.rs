//! The session id changes with the session's privileges (OWASP: renew the session id on any
//! privilege change): a password change, a verified email, a change of the user's own role,
//! joining an organization and switching the active one each answer with a new session cookie;
//! the cookie from before the change is refused (401) from then on, and the new one works.

use serde_json::json;

use crate::flows::{self, NEW_PASSWORD, PASSWORD};
use crate::{AppUnderTest, Method, token_from};

/// `POST /auth/change-password` rotates the session that asked.
pub async fn change_password_rotates_the_session_id(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let before = flows::session(app, &account.cookie).await;
    let reply = app
        .client()
        .post_json_with(
            "/auth/change-password",
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
            &account.cookie,
        )
        .await
        .expect(200);
    let cookie = flows::rotated_cookie(&reply, &account.cookie);
    let after =
        flows::assert_replaced(app, &account.cookie, &before["session"]["id"], &cookie).await;
    assert_eq!(after["user"]["id"], account.id(), "{after}");
}

/// Verifying the email with the session of that user rotates it, by `POST` and by the
/// clicked link (`GET`); a verification without a session sets no cookie.
pub async fn verify_email_with_the_session_rotates_it(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let before = flows::session(app, &account.cookie).await;
    let token = flows::verification_mail(app, "ada@example.com")
        .await
        .token();
    let reply = app
        .client()
        .post_json_with(
            "/auth/verify-email",
            &json!({"token": token}),
            &account.cookie,
        )
        .await
        .expect(200);
    let cookie = flows::rotated_cookie(&reply, &account.cookie);
    let after =
        flows::assert_replaced(app, &account.cookie, &before["session"]["id"], &cookie).await;
    assert_eq!(after["user"]["email_verified"], true, "{after}");

    let clicker = flows::sign_up(app, "grace@example.com").await;
    let before = flows::session(app, &clicker.cookie).await;
    let mail = flows::verification_mail(app, "grace@example.com").await;
    let reply = app
        .client()
        .get(mail.action_url())
        .accept_html()
        .cookie(&clicker.cookie)
        .send()
        .await;
    assert!(reply.status == 303 || reply.status == 302, "{reply}");
    let cookie = flows::rotated_cookie(&reply, &clicker.cookie);
    flows::assert_replaced(app, &clicker.cookie, &before["session"]["id"], &cookie).await;

    let other = flows::sign_up(app, "linus@example.com").await;
    let token = flows::verification_mail(app, "linus@example.com")
        .await
        .token();
    let reply = app
        .client()
        .post_json("/auth/verify-email", &json!({"token": token}))
        .await
        .expect(200);
    assert!(reply.session_set_cookie().is_none(), "{reply}");
    flows::session(app, &other.cookie).await;
}

/// `POST /auth/active-org` rotates the session, to an organization and to none.
pub async fn switching_the_active_org_rotates_the_session_id(app: &AppUnderTest) {
    let owner = flows::sign_up(app, "owner@example.com").await;
    let first = flows::create_org(app, &owner.cookie, "First").await;
    let second = flows::create_org(app, &owner.cookie, "Second").await;
    let before = flows::session(app, &owner.cookie).await;
    assert_eq!(before["org"]["id"], second["id"], "{before}");
    let reply = app
        .client()
        .post_json_with(
            "/auth/active-org",
            &json!({"org_id": first["id"]}),
            &owner.cookie,
        )
        .await
        .expect(200);
    let cookie = flows::rotated_cookie(&reply, &owner.cookie);
    let after = flows::assert_replaced(app, &owner.cookie, &before["session"]["id"], &cookie).await;
    assert_eq!(after["org"]["id"], first["id"], "{after}");
    assert_eq!(after["role"], "owner", "{after}");

    let reply = app
        .client()
        .post_json_with("/auth/active-org", &json!({"org_id": null}), &cookie)
        .await
        .expect(200);
    let none = flows::rotated_cookie(&reply, &cookie);
    let after = flows::assert_replaced(app, &cookie, &after["session"]["id"], &none).await;
    assert_eq!(after["org"], serde_json::Value::Null, "{after}");
}

/// A change of the session user's own role rotates that session: accepting an invitation
/// (a new membership, made the active organization), handing ownership to another member (the
/// owner becomes admin), and an admin demoting themself. A role change of someone else sets no
/// cookie on the request that made it.
pub async fn own_role_changes_rotate_the_session_id(app: &AppUnderTest) {
    let owner = flows::sign_up(app, "owner@example.com").await;
    let org = flows::create_org(app, &owner.cookie, "Acme").await["id"]
        .as_str()
        .expect("an org id")
        .to_owned();
    app.client()
        .post_json_with(
            &format!("/orgs/{org}/invitations"),
            &json!({"email": "member@example.com", "role": "member"}),
            &owner.cookie,
        )
        .await
        .expect(201);
    let member = flows::sign_up(app, "member@example.com").await;
    flows::verify_email(app, &member).await;
    let invitation = app
        .latest_mail_matching("member@example.com", |mail| {
            mail.action_url
                .as_deref()
                .is_some_and(|url| !url.contains("/auth/verify-email?"))
        })
        .await;
    let before = flows::session(app, &member.cookie).await;
    let reply = app
        .client()
        .post_json_with(
            "/invitations/accept",
            &json!({"token": token_from(invitation.action_url())}),
            &member.cookie,
        )
        .await
        .expect(200);
    let member_cookie = flows::rotated_cookie(&reply, &member.cookie);
    let after = flows::assert_replaced(
        app,
        &member.cookie,
        &before["session"]["id"],
        &member_cookie,
    )
    .await;
    assert_eq!(after["role"], "member", "{after}");

    // Someone else's role: no cookie for the request that changed it.
    let reply = app
        .client()
        .request(
            Method::PATCH,
            &format!("/orgs/{org}/members/{}", member.id()),
        )
        .app_origin()
        .cookie(&owner.cookie)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .expect(200);
    assert!(reply.session_set_cookie().is_none(), "{reply}");
    let session = flows::session(app, &member_cookie).await;
    assert_eq!(
        session["role"], "admin",
        "the member's session sees it: {session}"
    );

    let before = flows::session(app, &owner.cookie).await;
    let reply = app
        .client()
        .post_json_with(
            &format!("/orgs/{org}/transfer"),
            &json!({"user_id": member.id()}),
            &owner.cookie,
        )
        .await
        .expect(200);
    let owner_cookie = flows::rotated_cookie(&reply, &owner.cookie);
    let after =
        flows::assert_replaced(app, &owner.cookie, &before["session"]["id"], &owner_cookie).await;
    assert_eq!(after["role"], "admin", "the former owner is admin: {after}");

    let reply = app
        .client()
        .request(
            Method::PATCH,
            &format!("/orgs/{org}/members/{}", owner.id()),
        )
        .app_origin()
        .cookie(&owner_cookie)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .expect(200);
    let demoted = flows::rotated_cookie(&reply, &owner_cookie);
    let after = flows::assert_replaced(app, &owner_cookie, &after["session"]["id"], &demoted).await;
    assert_eq!(after["role"], "member", "{after}");
}
