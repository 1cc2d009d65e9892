//! [`OrganizationStore`](keystead::OrganizationStore): organizations, memberships and the rule that an organization keeps
//! an owner.

use std::sync::Arc;

use keystead::{
    AuthStore, Clock, Conflict, ManualClock, Member, Membership, OrgId, Role, UserId,
    UserOrganization,
};
use time::Duration;

use super::{
    assert_conflict, assert_last_owner, assert_not_found, custom_role, given_member, given_org,
    given_user, owners, role_of,
};
use crate::fixtures::{api_token, invitation, membership, organization, session};

/// `create_organization` stores every field and makes the creator its owner, joined when the
/// organization was created (the only time the store is given); lookups by id and slug,
/// `membership`, `members` and `organizations_for_user` all show it.
pub async fn organization_round_trips_and_creator_is_owner(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "founder@example.com").await;
    let mut org = organization("acme-inc", clock.now());
    org.name = "Acme, Inc. — Ünïcode & “quotes”".to_owned();
    org.mfa_required = true;
    let created = store
        .create_organization(&org, owner.id)
        .await
        .expect("create");
    let expected = Membership {
        org_id: org.id,
        user_id: owner.id,
        role: Role::OWNER,
        joined_at: org.created_at,
    };
    assert_eq!(created, expected);
    assert_eq!(store.organization(org.id).await.unwrap(), Some(org.clone()));
    assert_eq!(
        store.organization_by_slug("acme-inc").await.unwrap(),
        Some(org.clone())
    );
    assert_eq!(
        store.membership(org.id, owner.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.members(org.id).await.unwrap(),
        vec![Member {
            membership: expected,
            user: owner.clone(),
            second_factor: false,
        }]
    );
    assert_eq!(
        store.organizations_for_user(owner.id).await.unwrap(),
        vec![UserOrganization {
            organization: org.clone(),
            role: Role::OWNER,
            joined_at: org.created_at
        }]
    );
}

/// Lookups of organizations and memberships that do not exist give `Ok(None)` or an empty
/// list.
pub async fn organization_lookups_of_missing_rows_give_none(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let outsider = given_user(&*store, "outsider@example.com").await;
    let org = given_org(&*store, "present", owner.id, clock.now()).await;
    assert_eq!(store.organization(OrgId::new()).await.unwrap(), None);
    assert_eq!(store.organization_by_slug("absent").await.unwrap(), None);
    assert_eq!(store.membership(org.id, outsider.id).await.unwrap(), None);
    assert_eq!(
        store.membership(OrgId::new(), owner.id).await.unwrap(),
        None
    );
    assert!(store.members(OrgId::new()).await.unwrap().is_empty());
    assert!(
        store
            .organizations_for_user(outsider.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .organizations_for_user(UserId::new())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A taken slug is `Conflict::OrgSlug`, and neither the organization nor its owner's
/// membership is created.
pub async fn organization_with_taken_slug_is_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let first = given_user(&*store, "first@example.com").await;
    let second = given_user(&*store, "second@example.com").await;
    let org = given_org(&*store, "taken", first.id, clock.now()).await;
    let copy = organization("taken", clock.now());
    assert_conflict(
        store.create_organization(&copy, second.id).await,
        Conflict::OrgSlug,
        "taken slug",
    );
    assert_eq!(store.organization(copy.id).await.unwrap(), None);
    assert!(
        store
            .organizations_for_user(second.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.organization_by_slug("taken").await.unwrap(),
        Some(org)
    );
}

/// An organization for an owner that does not exist is `NotFound`, and is not created.
pub async fn organization_for_unknown_owner_is_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let org = organization("orphan", clock.now());
    assert_not_found(
        store.create_organization(&org, UserId::new()).await,
        "unknown owner",
    );
    assert_eq!(store.organization(org.id).await.unwrap(), None);
    assert_eq!(store.organization_by_slug("orphan").await.unwrap(), None);
}

/// `rename_organization` changes the name only and returns the organization; an unknown one
/// is `NotFound`.
pub async fn rename_organization_renames_it(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let renamed = store
        .rename_organization(org.id, "Acme Holdings")
        .await
        .expect("rename");
    let mut expected = org.clone();
    expected.name = "Acme Holdings".to_owned();
    assert_eq!(renamed, expected);
    assert_eq!(
        store.organization(org.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.organization_by_slug("acme").await.unwrap(),
        Some(expected)
    );
    assert_not_found(
        store.rename_organization(OrgId::new(), "Nope").await,
        "rename unknown",
    );
}

/// `delete_organization` removes the organization with its memberships, invitations and API
/// tokens; sessions that had it active lose it but stay; other organizations are untouched;
/// the slug is free again; a second delete is `NotFound`.
pub async fn delete_organization_removes_memberships_invitations_and_api_tokens(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let member = given_user(&*store, "member@example.com").await;
    let doomed = given_org(&*store, "doomed", owner.id, now).await;
    let kept = given_org(&*store, "kept", owner.id, now).await;
    given_member(&*store, doomed.id, member.id, Role::MEMBER, now).await;
    given_member(&*store, kept.id, member.id, Role::ADMIN, now).await;

    let doomed_invite = invitation(doomed.id, "new@example.com", Role::MEMBER, owner.id, now);
    let kept_invite = invitation(kept.id, "new@example.com", Role::MEMBER, owner.id, now);
    store.create_invitation(&doomed_invite).await.unwrap();
    store.create_invitation(&kept_invite).await.unwrap();
    let doomed_tokens = [
        api_token(doomed.id, owner.id, now),
        api_token(doomed.id, member.id, now),
    ];
    let kept_token = api_token(kept.id, member.id, now);
    for t in doomed_tokens.iter().chain([&kept_token]) {
        store.create_api_token(t).await.unwrap();
    }
    let mut owner_session = session(owner.id, now);
    owner_session.active_org_id = Some(doomed.id);
    let mut member_in_doomed = session(member.id, now);
    member_in_doomed.active_org_id = Some(doomed.id);
    let mut member_in_kept = session(member.id, now);
    member_in_kept.active_org_id = Some(kept.id);
    for s in [&owner_session, &member_in_doomed, &member_in_kept] {
        store.create_session(s).await.unwrap();
    }

    store
        .delete_organization(doomed.id)
        .await
        .expect("delete_organization");

    assert_eq!(store.organization(doomed.id).await.unwrap(), None);
    assert_eq!(store.organization_by_slug("doomed").await.unwrap(), None);
    assert_eq!(store.membership(doomed.id, owner.id).await.unwrap(), None);
    assert_eq!(store.membership(doomed.id, member.id).await.unwrap(), None);
    assert!(store.members(doomed.id).await.unwrap().is_empty());
    for user in [&owner, &member] {
        let orgs = store.organizations_for_user(user.id).await.unwrap();
        assert_eq!(
            orgs.iter().map(|o| o.organization.id).collect::<Vec<_>>(),
            vec![kept.id]
        );
    }
    assert_eq!(store.invitation(doomed_invite.id).await.unwrap(), None);
    assert_eq!(
        store
            .invitation_by_token_hash(&doomed_invite.token_hash)
            .await
            .unwrap(),
        None
    );
    for t in &doomed_tokens {
        assert_eq!(store.api_token(t.id).await.unwrap(), None);
    }
    assert!(
        store
            .api_tokens_for_org(doomed.id, None)
            .await
            .unwrap()
            .is_empty()
    );
    for s in [&owner_session, &member_in_doomed] {
        let after = store
            .session_by_id(s.id)
            .await
            .unwrap()
            .expect("the session stays");
        assert_eq!(
            after,
            keystead::Session {
                active_org_id: None,
                ..s.clone()
            }
        );
    }

    assert_eq!(
        store.organization(kept.id).await.unwrap(),
        Some(kept.clone())
    );
    assert_eq!(store.members(kept.id).await.unwrap().len(), 2);
    assert_eq!(
        store.invitation(kept_invite.id).await.unwrap(),
        Some(kept_invite)
    );
    assert_eq!(
        store.api_token(kept_token.id).await.unwrap(),
        Some(kept_token)
    );
    assert_eq!(
        store.session_by_id(member_in_kept.id).await.unwrap(),
        Some(member_in_kept)
    );

    given_org(&*store, "doomed", member.id, clock.now()).await;
    assert_not_found(store.delete_organization(doomed.id).await, "delete twice");
    assert_not_found(
        store.delete_organization(OrgId::new()).await,
        "delete unknown",
    );
}

/// `organizations_for_user` lists the user's organizations with role and join time, oldest
/// membership first, whatever order they were joined in.
pub async fn organizations_for_user_are_oldest_membership_first(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let t = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let user = given_user(&*store, "joiner@example.com").await;
    let o1 = given_org(&*store, "one", owner.id, t).await;
    let o2 = given_org(&*store, "two", owner.id, t).await;
    let o3 = given_org(&*store, "three", owner.id, t).await;
    given_member(
        &*store,
        o1.id,
        user.id,
        Role::MEMBER,
        t + Duration::hours(3),
    )
    .await;
    given_member(&*store, o3.id, user.id, Role::ADMIN, t + Duration::hours(1)).await;
    given_member(
        &*store,
        o2.id,
        user.id,
        custom_role(),
        t + Duration::hours(2),
    )
    .await;
    let own = given_org(&*store, "own", user.id, t + Duration::hours(4)).await;

    let entry = |organization: &keystead::Organization, role: Role, hours: i64| UserOrganization {
        organization: organization.clone(),
        role,
        joined_at: t + Duration::hours(hours),
    };
    assert_eq!(
        store.organizations_for_user(user.id).await.unwrap(),
        vec![
            entry(&o3, Role::ADMIN, 1),
            entry(&o2, custom_role(), 2),
            entry(&o1, Role::MEMBER, 3),
            entry(&own, Role::OWNER, 4),
        ]
    );
}

/// `members` lists the members with their user records, oldest membership first.
pub async fn members_are_oldest_membership_first_with_user_records(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let t = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let x = given_user(&*store, "x@example.com").await;
    let y = given_user(&*store, "y@example.com").await;
    let named = store.set_user_name(y.id, Some("Yvonne")).await.unwrap();
    let org = given_org(&*store, "acme", owner.id, t).await;
    let mx = given_member(&*store, org.id, x.id, Role::MEMBER, t + Duration::hours(2)).await;
    let my = given_member(&*store, org.id, y.id, Role::ADMIN, t + Duration::hours(1)).await;
    let mo = membership(org.id, owner.id, Role::OWNER, t);
    assert_eq!(
        store.members(org.id).await.unwrap(),
        vec![
            Member {
                membership: mo,
                user: owner,
                second_factor: false,
            },
            Member {
                membership: my,
                user: named,
                second_factor: false,
            },
            Member {
                membership: mx,
                user: x,
                second_factor: false,
            },
        ]
    );
}

/// `add_member` stores the membership (custom roles too); adding a member again is
/// `Conflict::Membership` and changes nothing; an unknown organization or user is `NotFound`.
pub async fn add_member_refuses_members_and_unknown_rows(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let member = given_user(&*store, "member@example.com").await;
    let custom = given_user(&*store, "custom@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    let m = given_member(&*store, org.id, member.id, Role::MEMBER, now).await;
    assert_eq!(
        store.membership(org.id, member.id).await.unwrap(),
        Some(m.clone())
    );
    let c = given_member(&*store, org.id, custom.id, custom_role(), now).await;
    assert_eq!(store.membership(org.id, custom.id).await.unwrap(), Some(c));

    let again = membership(org.id, member.id, Role::ADMIN, now + Duration::hours(1));
    assert_conflict(
        store.add_member(&again).await,
        Conflict::Membership,
        "member again",
    );
    assert_eq!(store.membership(org.id, member.id).await.unwrap(), Some(m));
    let owner_again = membership(org.id, owner.id, Role::MEMBER, now);
    assert_conflict(
        store.add_member(&owner_again).await,
        Conflict::Membership,
        "owner again",
    );
    assert_eq!(role_of(&*store, org.id, owner.id).await, Some(Role::OWNER));

    let stranger = given_user(&*store, "stranger@example.com").await;
    let no_org = membership(OrgId::new(), stranger.id, Role::MEMBER, now);
    assert_not_found(store.add_member(&no_org).await, "unknown organization");
    let no_user = membership(org.id, UserId::new(), Role::MEMBER, now);
    assert_not_found(store.add_member(&no_user).await, "unknown user");
    assert_eq!(store.members(org.id).await.unwrap().len(), 3);
}

/// `change_role` changes the role (to admin, a custom role, owner), keeps the join time and
/// returns the membership.
pub async fn change_role_changes_only_the_role(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let user = given_user(&*store, "climber@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    let joined = now + Duration::hours(1);
    given_member(&*store, org.id, user.id, Role::MEMBER, joined).await;

    for role in [Role::ADMIN, custom_role(), Role::OWNER, Role::MEMBER] {
        let changed = store
            .change_role(org.id, user.id, &role)
            .await
            .expect("change_role");
        let expected = membership(org.id, user.id, role, joined);
        assert_eq!(changed, expected);
        assert_eq!(
            store.membership(org.id, user.id).await.unwrap(),
            Some(expected)
        );
    }
    assert_eq!(owners(&*store, org.id).await, vec![owner.id]);
}

/// `change_role` and `remove_member` of a user who is not a member, or in an organization
/// that does not exist, are `NotFound`.
pub async fn change_role_and_remove_member_of_non_members_are_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let outsider = given_user(&*store, "outsider@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    assert_not_found(
        store.change_role(org.id, outsider.id, &Role::ADMIN).await,
        "change_role",
    );
    assert_not_found(
        store.remove_member(org.id, outsider.id).await,
        "remove_member",
    );
    assert_eq!(store.membership(org.id, outsider.id).await.unwrap(), None);
    assert_not_found(
        store
            .change_role(OrgId::new(), owner.id, &Role::ADMIN)
            .await,
        "change_role in unknown org",
    );
    assert_not_found(
        store.remove_member(OrgId::new(), owner.id).await,
        "remove in unknown org",
    );
}

/// Demoting the last owner is `LastOwner` (and they stay owner); keeping them owner is fine;
/// with a second owner, one may be demoted, and then the other may not.
pub async fn last_owner_cannot_be_demoted(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let member = given_user(&*store, "member@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    given_member(&*store, org.id, member.id, Role::MEMBER, now).await;

    for role in [Role::ADMIN, Role::MEMBER, custom_role()] {
        assert_last_owner(
            store.change_role(org.id, owner.id, &role).await,
            "demote the last owner",
        );
        assert_eq!(role_of(&*store, org.id, owner.id).await, Some(Role::OWNER));
    }
    let same = store.change_role(org.id, owner.id, &Role::OWNER).await;
    assert_eq!(
        same.expect("owner to owner is no demotion").role,
        Role::OWNER
    );

    store
        .change_role(org.id, member.id, &Role::OWNER)
        .await
        .expect("promote");
    store
        .change_role(org.id, owner.id, &Role::ADMIN)
        .await
        .expect("one of two owners");
    assert_last_owner(
        store.change_role(org.id, member.id, &Role::MEMBER).await,
        "demote the new last owner",
    );
    assert_eq!(owners(&*store, org.id).await, vec![member.id]);
}

/// Removing the last owner is `LastOwner` (and they stay); members can be removed, twice is
/// `NotFound`; with a second owner, the first can go.
pub async fn last_owner_cannot_be_removed(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let member = given_user(&*store, "member@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    given_member(&*store, org.id, member.id, Role::MEMBER, now).await;

    assert_last_owner(
        store.remove_member(org.id, owner.id).await,
        "remove the last owner",
    );
    assert_eq!(role_of(&*store, org.id, owner.id).await, Some(Role::OWNER));
    store
        .remove_member(org.id, member.id)
        .await
        .expect("remove a member");
    assert_eq!(store.membership(org.id, member.id).await.unwrap(), None);
    assert_not_found(store.remove_member(org.id, member.id).await, "remove twice");
    assert_last_owner(
        store.remove_member(org.id, owner.id).await,
        "the only member",
    );

    let heir = given_user(&*store, "heir@example.com").await;
    given_member(&*store, org.id, heir.id, Role::OWNER, now).await;
    store
        .remove_member(org.id, owner.id)
        .await
        .expect("one of two owners");
    assert_eq!(owners(&*store, org.id).await, vec![heir.id]);
    assert_last_owner(
        store.remove_member(org.id, heir.id).await,
        "the new last owner",
    );
}

/// `transfer_ownership` makes `to` an owner and `from` what it is told, keeping join times.
pub async fn transfer_ownership_swaps_the_roles(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let heir = given_user(&*store, "heir@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    let joined = now + Duration::hours(1);
    given_member(&*store, org.id, heir.id, Role::MEMBER, joined).await;

    store
        .transfer_ownership(org.id, owner.id, heir.id, &Role::ADMIN)
        .await
        .expect("transfer");
    assert_eq!(
        store.membership(org.id, heir.id).await.unwrap(),
        Some(membership(org.id, heir.id, Role::OWNER, joined))
    );
    assert_eq!(
        store.membership(org.id, owner.id).await.unwrap(),
        Some(membership(org.id, owner.id, Role::ADMIN, now))
    );
    assert_eq!(owners(&*store, org.id).await, vec![heir.id]);

    store
        .transfer_ownership(org.id, heir.id, owner.id, &Role::MEMBER)
        .await
        .expect("back");
    assert_eq!(role_of(&*store, org.id, owner.id).await, Some(Role::OWNER));
    assert_eq!(role_of(&*store, org.id, heir.id).await, Some(Role::MEMBER));
}

/// `transfer_ownership` to or from a non-member (or in an unknown organization) is
/// `NotFound`; from a member who is not an owner it is `LastOwner`; nothing changes.
pub async fn transfer_ownership_refuses_non_members_and_non_owners(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let admin = given_user(&*store, "admin@example.com").await;
    let member = given_user(&*store, "member@example.com").await;
    let outsider = given_user(&*store, "outsider@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    given_member(
        &*store,
        org.id,
        admin.id,
        Role::ADMIN,
        now + Duration::minutes(1),
    )
    .await;
    given_member(
        &*store,
        org.id,
        member.id,
        Role::MEMBER,
        now + Duration::minutes(2),
    )
    .await;
    let before = store.members(org.id).await.unwrap();

    assert_not_found(
        store
            .transfer_ownership(org.id, owner.id, outsider.id, &Role::ADMIN)
            .await,
        "to a non-member",
    );
    assert_not_found(
        store
            .transfer_ownership(org.id, outsider.id, member.id, &Role::ADMIN)
            .await,
        "from a non-member",
    );
    assert_last_owner(
        store
            .transfer_ownership(org.id, admin.id, member.id, &Role::MEMBER)
            .await,
        "from a member who is not an owner",
    );
    assert_not_found(
        store
            .transfer_ownership(OrgId::new(), owner.id, member.id, &Role::ADMIN)
            .await,
        "in an unknown organization",
    );
    assert_eq!(
        store.members(org.id).await.unwrap(),
        before,
        "nothing changed"
    );
    assert_eq!(store.membership(org.id, outsider.id).await.unwrap(), None);
}
