//! [`InvitationStore`](keystead::InvitationStore): invitations to organizations, single use and expiring.
//!
//! "Pending at `now`" is as [`Invitation::is_pending`] defines it: not accepted, not
//! revoked, and `now` before `expires_at`.

use std::sync::Arc;

use keystead::{
    AuthStore, Clock, Conflict, Invitation, InvitationId, ManualClock, Membership, OrgId, Role,
    UserId,
};
use time::{Duration, OffsetDateTime};

use super::{
    assert_conflict, assert_not_found, custom_role, given_member, given_org, given_user, role_of,
};
use crate::fixtures::{invitation, token_hash};

async fn stored(store: &dyn AuthStore, id: InvitationId) -> Invitation {
    store
        .invitation(id)
        .await
        .expect("invitation")
        .expect("the invitation exists")
}

/// An invitation made at `created_at` that expires at `expires_at`.
fn invitation_between(
    org_id: OrgId,
    invited_by: UserId,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Invitation {
    let mut i = invitation(
        org_id,
        "invitee@example.com",
        Role::MEMBER,
        invited_by,
        created_at,
    );
    i.expires_at = expires_at;
    i
}

/// An invitation reads back with every field, by id and by token hash.
pub async fn invitation_round_trips_every_field(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let mut inv = invitation(
        org.id,
        "Invitee@Example.COM",
        custom_role(),
        owner.id,
        clock.now(),
    );
    inv.expires_at = clock.now() + Duration::hours(72);
    store
        .create_invitation(&inv)
        .await
        .expect("create_invitation");
    assert_eq!(store.invitation(inv.id).await.unwrap(), Some(inv.clone()));
    assert_eq!(
        store
            .invitation_by_token_hash(&inv.token_hash)
            .await
            .unwrap(),
        Some(inv)
    );
}

/// Looking up an invitation that does not exist gives `Ok(None)`.
pub async fn invitation_lookups_of_missing_rows_give_none(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let inv = invitation(org.id, "a@example.com", Role::MEMBER, owner.id, clock.now());
    store.create_invitation(&inv).await.unwrap();
    assert_eq!(store.invitation(InvitationId::new()).await.unwrap(), None);
    assert_eq!(
        store.invitation_by_token_hash(&token_hash()).await.unwrap(),
        None
    );
}

/// A second invitation with a taken token hash is `Conflict::Token`.
pub async fn invitation_with_duplicate_token_hash_is_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let first = invitation(org.id, "a@example.com", Role::MEMBER, owner.id, clock.now());
    store.create_invitation(&first).await.unwrap();
    let mut second = invitation(org.id, "b@example.com", Role::ADMIN, owner.id, clock.now());
    second.token_hash = first.token_hash;
    assert_conflict(
        store.create_invitation(&second).await,
        Conflict::Token,
        "same hash",
    );
    assert_eq!(store.invitation(second.id).await.unwrap(), None);
    assert_eq!(
        store
            .invitation_by_token_hash(&first.token_hash)
            .await
            .unwrap(),
        Some(first)
    );
}

/// An invitation to an unknown organization, or by an unknown inviter, is `NotFound`.
pub async fn invitation_for_unknown_org_or_inviter_is_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let no_org = invitation(
        OrgId::new(),
        "a@example.com",
        Role::MEMBER,
        owner.id,
        clock.now(),
    );
    assert_not_found(
        store.create_invitation(&no_org).await,
        "unknown organization",
    );
    let no_inviter = invitation(
        org.id,
        "a@example.com",
        Role::MEMBER,
        UserId::new(),
        clock.now(),
    );
    assert_not_found(
        store.create_invitation(&no_inviter).await,
        "unknown inviter",
    );
    assert_eq!(store.invitation(no_org.id).await.unwrap(), None);
    assert_eq!(store.invitation(no_inviter.id).await.unwrap(), None);
}

/// `pending_invitations` lists the organization's invitations pending at `now`, newest first:
/// not expired ones (including one expiring exactly at `now`), revoked or accepted ones, or
/// other organizations'; as the clock moves, invitations drop out.
pub async fn pending_invitations_are_the_live_ones_newest_first(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let joiner = given_user(&*store, "joiner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now - Duration::days(30)).await;
    let other_org = given_org(&*store, "other", owner.id, now - Duration::days(30)).await;
    let week = Duration::days(7);
    let h = Duration::hours;

    // Made oldest first, so ids and creation times agree.
    let expired = invitation_between(
        org.id,
        owner.id,
        now - Duration::days(8),
        now - Duration::days(1),
    );
    let expires_now = invitation_between(org.id, owner.id, now - week, now);
    let accepted = invitation_between(org.id, owner.id, now - h(5), now + week);
    let revoked = invitation_between(org.id, owner.id, now - h(4), now + week);
    let i1 = invitation_between(org.id, owner.id, now - h(3), now + week);
    let i2 = invitation_between(org.id, owner.id, now - h(2), now + week);
    let i3 = invitation_between(org.id, owner.id, now - h(1), now + Duration::minutes(30));
    let elsewhere = invitation_between(other_org.id, owner.id, now - h(1), now + week);
    for i in [
        &i2,
        &expired,
        &revoked,
        &i3,
        &accepted,
        &i1,
        &expires_now,
        &elsewhere,
    ] {
        store.create_invitation(i).await.unwrap();
    }
    store
        .revoke_invitation(org.id, revoked.id, now)
        .await
        .expect("revoke");
    store
        .accept_invitation(&accepted.token_hash, joiner.id, now)
        .await
        .expect("accept");

    assert_eq!(
        store.pending_invitations(org.id, now).await.unwrap(),
        vec![i3.clone(), i2.clone(), i1.clone()]
    );
    clock.advance(Duration::minutes(45));
    assert_eq!(
        store
            .pending_invitations(org.id, clock.now())
            .await
            .unwrap(),
        vec![i2, i1]
    );
    assert_eq!(
        store
            .pending_invitations(other_org.id, clock.now())
            .await
            .unwrap(),
        vec![elsewhere]
    );
    assert!(
        store
            .pending_invitations(OrgId::new(), now)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `revoke_invitation` revokes a pending invitation of the organization at `at`; through
/// another organization, a second time, or for an accepted, expired or unknown invitation it
/// is `NotFound` and changes nothing.
pub async fn revoke_invitation_revokes_only_pending_invitations_of_the_org(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let joiner = given_user(&*store, "joiner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    let other_org = given_org(&*store, "other", owner.id, now).await;
    let inv = invitation(org.id, "a@example.com", Role::MEMBER, owner.id, now);
    let accepted = invitation(org.id, "b@example.com", Role::MEMBER, owner.id, now);
    let expired = invitation_between(org.id, owner.id, now, now + Duration::hours(1));
    for i in [&inv, &accepted, &expired] {
        store.create_invitation(i).await.unwrap();
    }
    store
        .accept_invitation(&accepted.token_hash, joiner.id, now)
        .await
        .expect("accept");
    let accepted = stored(&*store, accepted.id).await;

    clock.advance(Duration::hours(2));
    let at = clock.now();
    assert_not_found(
        store.revoke_invitation(other_org.id, inv.id, at).await,
        "other org",
    );
    assert_eq!(stored(&*store, inv.id).await, inv);

    store
        .revoke_invitation(org.id, inv.id, at)
        .await
        .expect("revoke");
    let revoked = Invitation {
        revoked_at: Some(at),
        ..inv.clone()
    };
    assert_eq!(stored(&*store, inv.id).await, revoked);
    clock.advance(Duration::minutes(1));
    assert_not_found(
        store.revoke_invitation(org.id, inv.id, clock.now()).await,
        "twice",
    );
    assert_eq!(
        stored(&*store, inv.id).await,
        revoked,
        "the first revocation time stays"
    );

    assert_not_found(
        store.revoke_invitation(org.id, accepted.id, at).await,
        "accepted",
    );
    assert_eq!(stored(&*store, accepted.id).await, accepted);
    assert_not_found(
        store.revoke_invitation(org.id, expired.id, at).await,
        "expired",
    );
    assert_eq!(stored(&*store, expired.id).await, expired);
    assert_not_found(
        store
            .revoke_invitation(org.id, InvitationId::new(), at)
            .await,
        "unknown invitation",
    );
}

/// `accept_invitation` marks the invitation accepted by the user at `now` and adds the
/// membership with the invitation's role, joined at `now`; the invitation is no longer
/// pending and cannot be accepted again.
pub async fn accept_invitation_marks_it_used_and_adds_the_membership(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let joiner = given_user(&*store, "joiner@example.com").await;
    let latecomer = given_user(&*store, "latecomer@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let inv = invitation(
        org.id,
        "joiner@example.com",
        Role::ADMIN,
        owner.id,
        clock.now(),
    );
    store.create_invitation(&inv).await.unwrap();

    clock.advance(Duration::hours(1));
    let now = clock.now();
    let joined = store
        .accept_invitation(&inv.token_hash, joiner.id, now)
        .await
        .expect("accept");
    let expected = Membership {
        org_id: org.id,
        user_id: joiner.id,
        role: Role::ADMIN,
        joined_at: now,
    };
    assert_eq!(joined, expected);
    assert_eq!(
        store.membership(org.id, joiner.id).await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        stored(&*store, inv.id).await,
        Invitation {
            accepted_at: Some(now),
            accepted_by: Some(joiner.id),
            ..inv.clone()
        }
    );
    assert!(
        store
            .pending_invitations(org.id, now)
            .await
            .unwrap()
            .is_empty()
    );

    assert_not_found(
        store
            .accept_invitation(&inv.token_hash, latecomer.id, now)
            .await,
        "accept a used invitation",
    );
    assert_eq!(store.membership(org.id, latecomer.id).await.unwrap(), None);
}

/// `accept_invitation` of an unknown, used, revoked or expired invitation (including at the
/// instant it expires) is `NotFound`, and adds no membership.
pub async fn accept_invitation_refuses_unknown_used_revoked_and_expired_invitations(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let first = given_user(&*store, "first@example.com").await;
    let user = given_user(&*store, "user@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    let used = invitation(org.id, "u@example.com", Role::MEMBER, owner.id, now);
    let revoked = invitation(org.id, "u@example.com", Role::MEMBER, owner.id, now);
    let expiring = invitation_between(org.id, owner.id, now, now + Duration::hours(1));
    for i in [&used, &revoked, &expiring] {
        store.create_invitation(i).await.unwrap();
    }
    store
        .accept_invitation(&used.token_hash, first.id, now)
        .await
        .expect("first accept");
    store
        .revoke_invitation(org.id, revoked.id, now)
        .await
        .expect("revoke");

    assert_not_found(
        store.accept_invitation(&token_hash(), user.id, now).await,
        "unknown",
    );
    assert_not_found(
        store
            .accept_invitation(&used.token_hash, user.id, now)
            .await,
        "used",
    );
    assert_not_found(
        store
            .accept_invitation(&revoked.token_hash, user.id, now)
            .await,
        "revoked",
    );
    let at_expiry = expiring.expires_at;
    assert_not_found(
        store
            .accept_invitation(&expiring.token_hash, user.id, at_expiry)
            .await,
        "at the instant it expires",
    );
    let later = at_expiry + Duration::seconds(1);
    assert_not_found(
        store
            .accept_invitation(&expiring.token_hash, user.id, later)
            .await,
        "expired",
    );
    assert_eq!(store.membership(org.id, user.id).await.unwrap(), None);
    assert_eq!(
        stored(&*store, expiring.id).await,
        expiring,
        "nothing changed"
    );
    assert_eq!(stored(&*store, revoked.id).await.accepted_at, None);
}

/// `accept_invitation` by someone who is a member already is `Conflict::Membership` and
/// changes nothing: their role stays, the invitation stays pending (another user can still
/// accept it).
pub async fn accept_invitation_by_a_member_is_a_conflict_and_changes_nothing(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let member = given_user(&*store, "member@example.com").await;
    let newcomer = given_user(&*store, "newcomer@example.com").await;
    let org = given_org(&*store, "acme", owner.id, now).await;
    given_member(&*store, org.id, member.id, Role::MEMBER, now).await;
    let inv = invitation(org.id, "member@example.com", Role::ADMIN, owner.id, now);
    store.create_invitation(&inv).await.unwrap();

    clock.advance(Duration::minutes(5));
    assert_conflict(
        store
            .accept_invitation(&inv.token_hash, member.id, clock.now())
            .await,
        Conflict::Membership,
        "a member accepts",
    );
    assert_eq!(
        role_of(&*store, org.id, member.id).await,
        Some(Role::MEMBER)
    );
    assert_eq!(
        stored(&*store, inv.id).await,
        inv,
        "the invitation is unchanged"
    );
    assert_eq!(
        store
            .pending_invitations(org.id, clock.now())
            .await
            .unwrap(),
        vec![inv.clone()]
    );

    store
        .accept_invitation(&inv.token_hash, newcomer.id, clock.now())
        .await
        .expect("still acceptable");
    assert_eq!(
        role_of(&*store, org.id, newcomer.id).await,
        Some(Role::ADMIN)
    );
}
