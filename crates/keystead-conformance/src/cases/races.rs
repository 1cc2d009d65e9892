//! Invariants under real concurrency: tasks on the multi-thread runtime, lined up on a
//! barrier, call the shared store at once. Every loser must get the documented error, not a
//! backend error (`database is locked`, a serialization failure).

use std::sync::Arc;

use keystead::{
    AuthStore, Clock, Conflict, ManualClock, Role, StoreError, StoreResult, TokenPurpose, UserId,
};
use time::Duration;

use super::{given_member, given_org, given_user, owners, race, role_of};
use crate::fixtures::{
    invitation, membership, new_user_with_password, one_time_token, organization, password_hash,
};

/// How many tasks race for one thing.
const RACERS: usize = 16;
/// How many times two owners race each other.
const OWNER_ROUNDS: usize = 20;
/// How many times two owners race to delete themselves (each round makes two users).
const DELETE_ROUNDS: usize = 10;

/// Splits results into the winners' indexes and the losers' errors.
fn winners_and_losers<T>(results: Vec<StoreResult<T>>) -> (Vec<usize>, Vec<StoreError>) {
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(_) => winners.push(i),
            Err(e) => losers.push(e),
        }
    }
    (winners, losers)
}

#[track_caller]
fn assert_all(losers: &[StoreError], expected: fn(&StoreError) -> bool, what: &str) {
    let unexpected: Vec<_> = losers.iter().filter(|e| !expected(e)).collect();
    assert!(
        unexpected.is_empty(),
        "{what}: unexpected errors from losers: {unexpected:?}"
    );
}

/// Of 16 concurrent sign-ups with one email (in different cases), exactly one succeeds; the
/// others get `Conflict::Email` and leave no user or password behind.
pub async fn concurrent_sign_ups_with_one_email_create_one_user(store: Arc<dyn AuthStore>) {
    let spellings = [
        "racer@example.com",
        "Racer@Example.com",
        "RACER@EXAMPLE.COM",
        " racer@EXAMPLE.com",
    ];
    let new_users: Vec<_> = (0..RACERS)
        .map(|i| {
            new_user_with_password(
                spellings[i % spellings.len()],
                password_hash(&format!("s{i}")),
            )
        })
        .collect();
    let results = race(RACERS, |i| {
        let store = Arc::clone(&store);
        let new = new_users[i].clone();
        async move { store.create_user(&new).await }
    })
    .await;
    let (winners, losers) = winners_and_losers(results);
    assert_eq!(
        winners.len(),
        1,
        "exactly one sign-up wins; losers: {losers:?}"
    );
    assert_all(
        &losers,
        |e| matches!(e, StoreError::Conflict(Conflict::Email)),
        "sign-up",
    );

    let winner = &new_users[winners[0]];
    let found = store.user_by_email(&winner.user.email).await.unwrap();
    assert_eq!(found, Some(winner.user.clone()));
    for (i, new) in new_users
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != winners[0])
    {
        assert_eq!(
            store.user_by_id(new.user.id).await.unwrap(),
            None,
            "loser {i}"
        );
        assert_eq!(
            store.password_credential(new.user.id).await.unwrap(),
            None,
            "loser {i}"
        );
    }
}

/// Of 16 concurrent creations of organizations with one slug, exactly one succeeds; the others
/// get `Conflict::OrgSlug` and leave no organization or membership behind.
pub async fn concurrent_creates_of_one_slug_create_one_organization(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let mut founders = Vec::new();
    for i in 0..RACERS {
        founders.push(given_user(&*store, &format!("founder{i}@example.com")).await);
    }
    let orgs: Vec<_> = (0..RACERS)
        .map(|_| organization("contested", clock.now()))
        .collect();
    let results = race(RACERS, |i| {
        let store = Arc::clone(&store);
        let (org, owner) = (orgs[i].clone(), founders[i].id);
        async move { store.create_organization(&org, owner).await }
    })
    .await;
    let (winners, losers) = winners_and_losers(results);
    assert_eq!(
        winners.len(),
        1,
        "exactly one creation wins; losers: {losers:?}"
    );
    assert_all(
        &losers,
        |e| matches!(e, StoreError::Conflict(Conflict::OrgSlug)),
        "create org",
    );

    let w = winners[0];
    assert_eq!(
        store.organization_by_slug("contested").await.unwrap(),
        Some(orgs[w].clone())
    );
    assert_eq!(owners(&*store, orgs[w].id).await, vec![founders[w].id]);
    for (i, founder) in founders.iter().enumerate().filter(|&(i, _)| i != w) {
        assert!(
            store
                .organizations_for_user(founder.id)
                .await
                .unwrap()
                .is_empty(),
            "loser {i}"
        );
        assert_eq!(
            store.organization(orgs[i].id).await.unwrap(),
            None,
            "loser {i}"
        );
    }
}

/// Of 16 concurrent additions of one user to one organization, exactly one succeeds; the
/// others get `Conflict::Membership`.
pub async fn concurrent_adds_of_one_member_create_one_membership(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let joiner = given_user(&*store, "joiner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let roles = [Role::MEMBER, Role::ADMIN];
    let results = race(RACERS, |i| {
        let store = Arc::clone(&store);
        let m = membership(
            org.id,
            joiner.id,
            roles[i % 2].clone(),
            clock.now() + Duration::seconds(i as i64),
        );
        async move { store.add_member(&m).await }
    })
    .await;
    let (winners, losers) = winners_and_losers(results);
    assert_eq!(
        winners.len(),
        1,
        "exactly one addition wins; losers: {losers:?}"
    );
    assert_all(
        &losers,
        |e| matches!(e, StoreError::Conflict(Conflict::Membership)),
        "add",
    );
    assert_eq!(store.members(org.id).await.unwrap().len(), 2);
    assert_eq!(
        role_of(&*store, org.id, joiner.id).await,
        Some(roles[winners[0] % 2].clone())
    );
}

/// Two owners, the only two, demote each other at the same moment, 20 times over: each time
/// exactly one demotion succeeds, the other is `LastOwner`, and exactly one owner is left:
/// the one whose demotion failed.
pub async fn owners_demoting_each_other_at_once_leave_one_owner(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let a = given_user(&*store, "a@example.com").await;
    let b = given_user(&*store, "b@example.com").await;
    for round in 0..OWNER_ROUNDS {
        let org = given_org(&*store, &format!("demote-{round}"), a.id, clock.now()).await;
        given_member(&*store, org.id, b.id, Role::OWNER, clock.now()).await;
        let pair = [a.id, b.id];
        let results = race(2, |i| {
            let store = Arc::clone(&store);
            let (org_id, user) = (org.id, pair[i]);
            async move { store.change_role(org_id, user, &Role::ADMIN).await }
        })
        .await;
        check_one_owner_left(&*store, org.id, pair, results, round).await;
    }
}

/// Two owners, the only two, remove each other at the same moment, 20 times over: each time
/// exactly one removal succeeds, the other is `LastOwner`, and the one left is the owner.
pub async fn owners_removing_each_other_at_once_leave_one_owner(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let a = given_user(&*store, "a@example.com").await;
    let b = given_user(&*store, "b@example.com").await;
    for round in 0..OWNER_ROUNDS {
        let org = given_org(&*store, &format!("remove-{round}"), a.id, clock.now()).await;
        given_member(&*store, org.id, b.id, Role::OWNER, clock.now()).await;
        let pair = [a.id, b.id];
        let results = race(2, |i| {
            let store = Arc::clone(&store);
            let (org_id, user) = (org.id, pair[i]);
            async move { store.remove_member(org_id, user).await }
        })
        .await;
        let survivor = check_one_owner_left(&*store, org.id, pair, results, round).await;
        let members = store.members(org.id).await.unwrap();
        assert_eq!(members.len(), 1, "round {round}: one member left");
        assert_eq!(members[0].user.id, survivor, "round {round}");
    }
}

/// Two owners, the only two, delete their accounts at the same moment, 10 times over: each
/// time exactly one deletion succeeds, the other is `LastOwner`, and the organization keeps
/// its surviving owner.
pub async fn owners_deleting_themselves_at_once_leave_one_owner(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    for round in 0..DELETE_ROUNDS {
        let a = given_user(&*store, &format!("a{round}@example.com")).await;
        let b = given_user(&*store, &format!("b{round}@example.com")).await;
        let org = given_org(&*store, &format!("delete-{round}"), a.id, clock.now()).await;
        given_member(&*store, org.id, b.id, Role::OWNER, clock.now()).await;
        let pair = [a.id, b.id];
        let results = race(2, |i| {
            let store = Arc::clone(&store);
            let user = pair[i];
            async move { store.delete_user(user).await }
        })
        .await;
        let survivor = check_one_owner_left(&*store, org.id, pair, results, round).await;
        let gone = if survivor == a.id { b.id } else { a.id };
        assert_eq!(
            store.user_by_id(gone).await.unwrap(),
            None,
            "round {round}: deleted"
        );
        assert!(
            store.user_by_id(survivor).await.unwrap().is_some(),
            "round {round}: kept"
        );
    }
}

/// Checks one race of two owners: one call won, the other is `LastOwner`, and the loser is
/// the organization's only owner. Returns the surviving owner.
async fn check_one_owner_left<T: std::fmt::Debug>(
    store: &dyn AuthStore,
    org_id: keystead::OrgId,
    pair: [UserId; 2],
    results: Vec<StoreResult<T>>,
    round: usize,
) -> UserId {
    let outcome = format!("{results:?}");
    let refused: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Err(StoreError::LastOwner)))
        .map(|(i, _)| i)
        .collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert!(
        won == 1 && refused.len() == 1,
        "round {round}: expected one Ok and one Err(LastOwner), got {outcome}"
    );
    let survivor = pair[refused[0]];
    assert_eq!(
        owners(store, org_id).await,
        vec![survivor],
        "round {round}: one owner left"
    );
    survivor
}

/// Of 16 concurrent consumes of one token, exactly one gets it.
pub async fn concurrent_consumes_of_one_token_succeed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "reset@example.com").await;
    let token = one_time_token(user.id, TokenPurpose::PasswordReset, clock.now());
    store.create_one_time_token(&token).await.unwrap();
    clock.advance(Duration::minutes(1));
    let now = clock.now();
    let results = race(RACERS, |_| {
        let store = Arc::clone(&store);
        let hash = token.token_hash;
        async move {
            store
                .consume_one_time_token(TokenPurpose::PasswordReset, &hash, now)
                .await
        }
    })
    .await;
    let errors: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(errors.is_empty(), "no consume fails: {errors:?}");
    let got: Vec<_> = results
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect();
    assert_eq!(got.len(), 1, "exactly one consume gets the token: {got:?}");
    assert_eq!(got[0].id, token.id);
    assert_eq!(got[0].used_at, Some(now));
}

/// Of 16 different users accepting one invitation at once, exactly one joins; the others get
/// `NotFound` (the invitation is used) and the organization has one member more.
pub async fn concurrent_accepts_of_one_invitation_succeed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let mut users = Vec::new();
    for i in 0..RACERS {
        users.push(given_user(&*store, &format!("invitee{i}@example.com")).await);
    }
    let inv = invitation(
        org.id,
        "invitee@example.com",
        Role::ADMIN,
        owner.id,
        clock.now(),
    );
    store.create_invitation(&inv).await.unwrap();
    let before = store.members(org.id).await.unwrap().len();
    clock.advance(Duration::minutes(1));
    let now = clock.now();

    let results = race(RACERS, |i| {
        let store = Arc::clone(&store);
        let (hash, user) = (inv.token_hash, users[i].id);
        async move { store.accept_invitation(&hash, user, now).await }
    })
    .await;
    let (winners, losers) = winners_and_losers(results);
    assert_eq!(
        winners.len(),
        1,
        "exactly one accept wins; losers: {losers:?}"
    );
    assert_all(&losers, |e| matches!(e, StoreError::NotFound), "accept");

    let winner = users[winners[0]].id;
    assert_eq!(store.members(org.id).await.unwrap().len(), before + 1);
    assert_eq!(role_of(&*store, org.id, winner).await, Some(Role::ADMIN));
    let stored = store
        .invitation(inv.id)
        .await
        .unwrap()
        .expect("the invitation");
    assert_eq!(stored.accepted_by, Some(winner));
    assert_eq!(stored.accepted_at, Some(now));
}
