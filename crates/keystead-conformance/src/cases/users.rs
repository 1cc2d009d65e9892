//! [`UserStore`](keystead::UserStore): users and their passwords, and what deleting a user takes with it.

use std::sync::Arc;

use keystead::{
    AuditQuery, AuthStore, Clock, Conflict, ManualClock, PasswordCredential, Role, TokenPurpose,
    UserId,
};
use time::Duration;

use super::{
    assert_conflict, assert_last_owner, assert_not_found, given_member, given_org, given_user,
    owners, role_of,
};
use crate::fixtures::{
    api_token, audit_event, email, external_account, new_user, new_user_with_password,
    one_time_token, password_hash, session,
};

/// `create_user` returns the user, and `user_by_id` and `user_by_email` read back every field,
/// optional ones set or not.
pub async fn created_user_round_trips_every_field(store: Arc<dyn AuthStore>) {
    let mut full = new_user("Full.Name@Example.com");
    full.user.name = Some("Zoë O'Brien — \"quoted\"".to_owned());
    full.user.email_verified_at = Some(full.user.created_at + Duration::minutes(5));
    let created = store.create_user(&full).await.expect("create_user");
    assert_eq!(created, full.user, "create_user returns the user");
    assert_eq!(
        store.user_by_id(full.user.id).await.unwrap(),
        Some(full.user.clone())
    );
    assert_eq!(
        store
            .user_by_email(&email("full.name@example.com"))
            .await
            .unwrap(),
        Some(full.user.clone())
    );

    let bare = new_user("bare@example.com");
    assert_eq!(store.create_user(&bare).await.unwrap(), bare.user);
    assert_eq!(
        store.user_by_id(bare.user.id).await.unwrap(),
        Some(bare.user.clone())
    );
    assert_eq!(
        store.user_by_email(&bare.user.email).await.unwrap(),
        Some(bare.user)
    );
}

/// Looking up a user that does not exist gives `Ok(None)`.
pub async fn user_lookups_of_missing_rows_give_none(store: Arc<dyn AuthStore>) {
    given_user(&*store, "present@example.com").await;
    assert_eq!(store.user_by_id(UserId::new()).await.unwrap(), None);
    assert_eq!(
        store
            .user_by_email(&email("absent@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.password_credential(UserId::new()).await.unwrap(),
        None
    );
}

/// Emails are unique case-insensitively: `Alice@X.com` after `alice@x.com` is
/// `Conflict::Email`, and neither the user nor its password is created.
pub async fn second_user_with_same_email_in_other_case_is_refused(store: Arc<dyn AuthStore>) {
    let first = given_user(&*store, "alice@x.com").await;
    let second = new_user_with_password("Alice@X.com", password_hash("second"));
    assert_eq!(second.user.email, first.email, "Email normalizes the case");
    assert_conflict(
        store.create_user(&second).await,
        Conflict::Email,
        "same email, other case",
    );
    assert_eq!(store.user_by_id(second.user.id).await.unwrap(), None);
    assert_eq!(
        store.password_credential(second.user.id).await.unwrap(),
        None
    );
    assert_eq!(
        store.user_by_email(&email("ALICE@x.COM")).await.unwrap(),
        Some(first),
        "the first user keeps the address"
    );
}

/// A second user with a taken id (an import reusing an id) is `Conflict::UserId`.
pub async fn second_user_with_same_id_is_refused(store: Arc<dyn AuthStore>) {
    let first = given_user(&*store, "first@example.com").await;
    let mut second = new_user("second@example.com");
    second.user.id = first.id;
    assert_conflict(
        store.create_user(&second).await,
        Conflict::UserId,
        "same id",
    );
    assert_eq!(store.user_by_email(&second.user.email).await.unwrap(), None);
    assert_eq!(store.user_by_id(first.id).await.unwrap(), Some(first));
}

/// `create_user` with a password hash stores the credential with the user. Its `updated_at`
/// is the user's `created_at`: the only time the store is given.
pub async fn create_user_with_password_stores_the_credential(store: Arc<dyn AuthStore>) {
    let new = new_user_with_password("pw@example.com", password_hash("salt-one"));
    store.create_user(&new).await.expect("create_user");
    assert_eq!(
        store.password_credential(new.user.id).await.unwrap(),
        Some(PasswordCredential {
            user_id: new.user.id,
            hash: password_hash("salt-one"),
            updated_at: new.user.created_at,
        })
    );
}

/// A user created without a password has no credential.
pub async fn create_user_without_password_stores_no_credential(store: Arc<dyn AuthStore>) {
    let user = given_user(&*store, "nopw@example.com").await;
    assert_eq!(store.password_credential(user.id).await.unwrap(), None);
}

/// `set_user_name` sets the name, then clears it, and returns the updated user.
pub async fn set_user_name_sets_and_clears_the_name(store: Arc<dyn AuthStore>) {
    let user = given_user(&*store, "named@example.com").await;
    let named = store
        .set_user_name(user.id, Some("Ada Lovelace"))
        .await
        .unwrap();
    let mut expected = user.clone();
    expected.name = Some("Ada Lovelace".to_owned());
    assert_eq!(named, expected);
    assert_eq!(store.user_by_id(user.id).await.unwrap(), Some(expected));

    let cleared = store.set_user_name(user.id, None).await.unwrap();
    assert_eq!(cleared, user);
    assert_eq!(store.user_by_id(user.id).await.unwrap(), Some(user));
}

/// `mark_email_verified` sets the time once; a later call keeps the first time.
pub async fn mark_email_verified_keeps_the_first_time(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "verify@example.com").await;
    let first = clock.now();
    let verified = store.mark_email_verified(user.id, first).await.unwrap();
    assert_eq!(verified.email_verified_at, Some(first));
    assert_eq!(verified.email, user.email);

    clock.advance(Duration::hours(1));
    let again = store
        .mark_email_verified(user.id, clock.now())
        .await
        .unwrap();
    assert_eq!(
        again.email_verified_at,
        Some(first),
        "the earlier time is kept"
    );
    let stored = store.user_by_id(user.id).await.unwrap().expect("the user");
    assert_eq!(stored.email_verified_at, Some(first));
}

/// `set_password_hash` gives a user without a password one, then replaces it, with the time.
pub async fn set_password_hash_sets_and_replaces_the_hash(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "setpw@example.com").await;
    let first = clock.now();
    store
        .set_password_hash(user.id, &password_hash("one"), first)
        .await
        .unwrap();
    assert_eq!(
        store.password_credential(user.id).await.unwrap(),
        Some(PasswordCredential {
            user_id: user.id,
            hash: password_hash("one"),
            updated_at: first
        })
    );

    clock.advance(Duration::days(3));
    store
        .set_password_hash(user.id, &password_hash("two"), clock.now())
        .await
        .unwrap();
    assert_eq!(
        store.password_credential(user.id).await.unwrap(),
        Some(PasswordCredential {
            user_id: user.id,
            hash: password_hash("two"),
            updated_at: clock.now()
        })
    );
}

/// `remove_password` removes the credential and says whether there was one.
pub async fn remove_password_reports_whether_there_was_one(store: Arc<dyn AuthStore>) {
    let with = new_user_with_password("haspw@example.com", password_hash("x"));
    store.create_user(&with).await.unwrap();
    let without = given_user(&*store, "nopw@example.com").await;

    assert!(
        store.remove_password(with.user.id).await.unwrap(),
        "there was one"
    );
    assert_eq!(store.password_credential(with.user.id).await.unwrap(), None);
    assert!(
        !store.remove_password(with.user.id).await.unwrap(),
        "not any more"
    );
    assert!(
        !store.remove_password(without.id).await.unwrap(),
        "never had one"
    );
    assert!(
        store.user_by_id(with.user.id).await.unwrap().is_some(),
        "the user stays"
    );
}

/// `set_user_name`, `mark_email_verified` and `set_password_hash` of an unknown user are
/// `NotFound`, and create nothing.
pub async fn updates_of_unknown_users_are_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    given_user(&*store, "someone@example.com").await;
    let ghost = UserId::new();
    assert_not_found(
        store.set_user_name(ghost, Some("Ghost")).await,
        "set_user_name",
    );
    assert_not_found(
        store.mark_email_verified(ghost, clock.now()).await,
        "mark_email_verified",
    );
    assert_not_found(
        store
            .set_password_hash(ghost, &password_hash("g"), clock.now())
            .await,
        "set_password_hash",
    );
    assert_eq!(store.password_credential(ghost).await.unwrap(), None);
    assert_eq!(store.user_by_id(ghost).await.unwrap(), None);
}

/// `delete_user` removes the user's password, external accounts, sessions, memberships,
/// one-time tokens and API tokens, and leaves other users' alone; the email is free again.
pub async fn delete_user_removes_everything_that_is_theirs(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let doomed_new = new_user_with_password("doomed@example.com", password_hash("d"));
    let doomed = store.create_user(&doomed_new).await.unwrap();
    let org = given_org(&*store, "acme", owner.id, now).await;
    given_member(&*store, org.id, doomed.id, Role::ADMIN, now).await;

    let link = external_account(doomed.id, "https://issuer.example", "doomed-sub", now);
    store.link_external_account(&link).await.unwrap();
    let mut doomed_sessions = vec![session(doomed.id, now), session(doomed.id, now)];
    doomed_sessions[1].active_org_id = Some(org.id);
    for s in &doomed_sessions {
        store.create_session(s).await.unwrap();
    }
    let reset = one_time_token(doomed.id, TokenPurpose::PasswordReset, now);
    let verify = one_time_token(doomed.id, TokenPurpose::EmailVerification, now);
    store.create_one_time_token(&reset).await.unwrap();
    store.create_one_time_token(&verify).await.unwrap();
    let doomed_token = api_token(org.id, doomed.id, now);
    store.create_api_token(&doomed_token).await.unwrap();

    // The owner's things, which must survive.
    let owner_link = external_account(owner.id, "https://issuer.example", "owner-sub", now);
    store.link_external_account(&owner_link).await.unwrap();
    let owner_session = session(owner.id, now);
    store.create_session(&owner_session).await.unwrap();
    let owner_reset = one_time_token(owner.id, TokenPurpose::PasswordReset, now);
    store.create_one_time_token(&owner_reset).await.unwrap();
    let owner_token = api_token(org.id, owner.id, now);
    store.create_api_token(&owner_token).await.unwrap();

    store.delete_user(doomed.id).await.expect("delete_user");

    assert_eq!(store.user_by_id(doomed.id).await.unwrap(), None);
    assert_eq!(store.user_by_email(&doomed.email).await.unwrap(), None);
    assert_eq!(
        store.password_credential(doomed.id).await.unwrap(),
        None,
        "password"
    );
    assert_eq!(
        store
            .external_account(&link.issuer, &link.subject)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .external_accounts_for_user(doomed.id)
            .await
            .unwrap()
            .is_empty()
    );
    for s in &doomed_sessions {
        assert_eq!(store.session_by_id(s.id).await.unwrap(), None, "session");
        assert_eq!(
            store.session_by_token_hash(&s.token_hash).await.unwrap(),
            None
        );
    }
    assert!(
        store
            .sessions_for_user(doomed.id, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.membership(org.id, doomed.id).await.unwrap(),
        None,
        "membership"
    );
    assert!(
        store
            .organizations_for_user(doomed.id)
            .await
            .unwrap()
            .is_empty()
    );
    let members = store.members(org.id).await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.user.id).collect::<Vec<_>>(),
        vec![owner.id]
    );
    clock.advance(Duration::minutes(1));
    for t in [&reset, &verify] {
        assert_eq!(
            store
                .consume_one_time_token(t.purpose, &t.token_hash, clock.now())
                .await
                .unwrap(),
            None,
            "one-time token"
        );
    }
    assert_eq!(
        store.api_token(doomed_token.id).await.unwrap(),
        None,
        "API token"
    );
    assert!(
        store
            .api_tokens_for_org(org.id, Some(doomed.id))
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store.user_by_id(owner.id).await.unwrap(),
        Some(owner.clone())
    );
    assert_eq!(
        store
            .external_account(&owner_link.issuer, &owner_link.subject)
            .await
            .unwrap(),
        Some(owner_link)
    );
    assert_eq!(
        store.session_by_id(owner_session.id).await.unwrap(),
        Some(owner_session)
    );
    assert!(
        store
            .consume_one_time_token(
                TokenPurpose::PasswordReset,
                &owner_reset.token_hash,
                clock.now()
            )
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.api_token(owner_token.id).await.unwrap(),
        Some(owner_token)
    );
    assert_eq!(store.organization(org.id).await.unwrap(), Some(org));

    let again = new_user("Doomed@Example.com");
    store
        .create_user(&again)
        .await
        .expect("the email is free again");
}

/// Audit events about or by a deleted user stay, with `actor_id`/`user_id` cleared where
/// they named that user, and nothing else changed.
pub async fn delete_user_keeps_audit_events_with_user_refs_cleared(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let keeper = given_user(&*store, "keeper@example.com").await;
    let leaver = given_user(&*store, "leaver@example.com").await;
    let org = given_org(&*store, "acme", keeper.id, clock.now()).await;

    let mut events = Vec::new();
    for (actor, user) in [
        (Some(leaver.id), Some(leaver.id)),
        (Some(keeper.id), Some(leaver.id)),
        (Some(leaver.id), Some(keeper.id)),
        (Some(keeper.id), None),
    ] {
        clock.advance(Duration::seconds(1));
        let mut event = audit_event("user.updated", clock.now());
        event.actor_id = actor;
        event.user_id = user;
        event.org_id = Some(org.id);
        event.ip = Some("192.0.2.1".to_owned());
        event.data = serde_json::json!({ "field": "name" });
        store.record_audit_event(&event).await.unwrap();
        events.push(event);
    }

    store.delete_user(leaver.id).await.expect("delete_user");

    let clear = |id: Option<UserId>| id.filter(|&id| id != leaver.id);
    let expected: Vec<_> = events
        .iter()
        .rev()
        .map(|e| {
            let mut e = e.clone();
            e.actor_id = clear(e.actor_id);
            e.user_id = clear(e.user_id);
            e
        })
        .collect();
    let all = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    assert_eq!(store.audit_events(&all).await.unwrap(), expected);
    let by_leaver = AuditQuery {
        user_id: Some(leaver.id),
        ..all.clone()
    };
    assert!(store.audit_events(&by_leaver).await.unwrap().is_empty());
    let by_keeper = AuditQuery {
        user_id: Some(keeper.id),
        ..all
    };
    assert_eq!(store.audit_events(&by_keeper).await.unwrap().len(), 3);
}

/// Deleting a user that does not exist is `NotFound`, and deletes nobody.
pub async fn delete_user_of_unknown_user_is_not_found(store: Arc<dyn AuthStore>) {
    let user = given_user(&*store, "stays@example.com").await;
    assert_not_found(
        store.delete_user(UserId::new()).await,
        "delete_user(unknown)",
    );
    assert_eq!(store.user_by_id(user.id).await.unwrap(), Some(user.clone()));
    store.delete_user(user.id).await.unwrap();
    assert_not_found(store.delete_user(user.id).await, "delete_user twice");
}

/// An organization's last owner cannot be deleted (`LastOwner`, and nothing of theirs goes);
/// an owner with a co-owner, and a plain member, can be.
pub async fn last_owner_cannot_be_deleted(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let solo = given_user(&*store, "solo@example.com").await;
    let solo_org = given_org(&*store, "solo", solo.id, now).await;
    let solo_session = session(solo.id, now);
    store.create_session(&solo_session).await.unwrap();
    assert_last_owner(
        store.delete_user(solo.id).await,
        "sole owner of an org alone",
    );
    assert_eq!(store.user_by_id(solo.id).await.unwrap(), Some(solo.clone()));
    assert_eq!(
        role_of(&*store, solo_org.id, solo.id).await,
        Some(Role::OWNER)
    );
    assert_eq!(
        store.session_by_id(solo_session.id).await.unwrap(),
        Some(solo_session)
    );

    let boss = given_user(&*store, "boss@example.com").await;
    let staff = given_user(&*store, "staff@example.com").await;
    let org = given_org(&*store, "team", boss.id, now).await;
    given_member(&*store, org.id, staff.id, Role::MEMBER, now).await;
    given_member(&*store, org.id, solo.id, Role::ADMIN, now).await;
    assert_last_owner(
        store.delete_user(boss.id).await,
        "sole owner of an org with members",
    );
    assert_eq!(owners(&*store, org.id).await, vec![boss.id]);

    let co = given_user(&*store, "co@example.com").await;
    given_member(&*store, org.id, co.id, Role::OWNER, now).await;
    store
        .delete_user(boss.id)
        .await
        .expect("an owner with a co-owner can go");
    assert_eq!(owners(&*store, org.id).await, vec![co.id]);
    store.delete_user(staff.id).await.expect("a member can go");
    assert_last_owner(
        store.delete_user(co.id).await,
        "the co-owner is now the last owner",
    );
    assert_last_owner(
        store.delete_user(solo.id).await,
        "still the last owner of solo",
    );
}
