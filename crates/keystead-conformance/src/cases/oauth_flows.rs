//! [`OAuthFlowStore`](keystead::OAuthFlowStore): sign-in flows with a provider in progress,
//! taken out once by the callback, expiring.

use std::sync::Arc;

use keystead::{AuthStore, Clock, Conflict, ManualClock, UserId};
use time::Duration;

use super::{assert_conflict, assert_not_found, given_user, race};
use crate::fixtures::oauth_flow;

/// How many callbacks race for one flow.
const RACERS: usize = 16;

/// A stored flow comes back with every field, once: a second take gives `None`.
pub async fn oauth_flow_round_trips_every_field_and_is_taken_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "linker@example.com").await;
    let mut flow = oauth_flow(clock.now());
    flow.link_user_id = Some(user.id);
    store.create_oauth_flow(&flow).await.expect("create");
    let mut bare = oauth_flow(clock.now());
    bare.next = None;
    bare.provider = "oidc".to_owned();
    store.create_oauth_flow(&bare).await.expect("create");

    clock.advance(Duration::minutes(9));
    let taken = store.take_oauth_flow(&flow.id_hash, clock.now()).await;
    assert_eq!(taken.expect("take"), Some(flow.clone()));
    assert_eq!(
        store
            .take_oauth_flow(&flow.id_hash, clock.now())
            .await
            .expect("take"),
        None,
        "single use"
    );
    assert_eq!(
        store
            .take_oauth_flow(&bare.id_hash, clock.now())
            .await
            .expect("take"),
        Some(bare),
        "the other flow is untouched"
    );
    assert_eq!(
        store
            .take_oauth_flow(&crate::fixtures::token_hash(), clock.now())
            .await
            .expect("take"),
        None
    );
}

/// A flow is not given out at or after `expires_at`, and taking it removes it anyway.
pub async fn expired_oauth_flow_is_not_given_out(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let flow = oauth_flow(clock.now());
    store.create_oauth_flow(&flow).await.expect("create");
    assert_eq!(
        store
            .take_oauth_flow(&flow.id_hash, flow.expires_at)
            .await
            .expect("take"),
        None,
        "expired exactly at expires_at"
    );
    assert_eq!(
        store
            .take_oauth_flow(&flow.id_hash, flow.expires_at - Duration::seconds(1))
            .await
            .expect("take"),
        None,
        "an expired flow was taken out, not kept for later"
    );
}

/// A duplicate reference is a conflict; a link flow for an unknown user is not found; a
/// user's deletion takes their link flows with it.
pub async fn oauth_flow_duplicates_and_unknown_users_are_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let flow = oauth_flow(clock.now());
    store.create_oauth_flow(&flow).await.expect("create");
    let mut twin = oauth_flow(clock.now());
    twin.id_hash = flow.id_hash;
    assert_conflict(
        store.create_oauth_flow(&twin).await,
        Conflict::Token,
        "same id_hash",
    );
    let mut orphan = oauth_flow(clock.now());
    orphan.link_user_id = Some(UserId::new());
    assert_not_found(store.create_oauth_flow(&orphan).await, "unknown link user");

    let user = given_user(&*store, "leaver@example.com").await;
    let mut linking = oauth_flow(clock.now());
    linking.link_user_id = Some(user.id);
    store.create_oauth_flow(&linking).await.expect("create");
    store.delete_user(user.id).await.expect("delete_user");
    assert_eq!(
        store
            .take_oauth_flow(&linking.id_hash, clock.now())
            .await
            .expect("take"),
        None,
        "the deleted user's link flow went with them"
    );
}

/// Cleanup removes exactly the flows expired at `now`.
pub async fn delete_expired_oauth_flows_removes_only_expired_flows(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let old = oauth_flow(clock.now());
    store.create_oauth_flow(&old).await.expect("create");
    clock.advance(Duration::minutes(5));
    let young = oauth_flow(clock.now());
    store.create_oauth_flow(&young).await.expect("create");
    assert_eq!(
        store
            .delete_expired_oauth_flows(old.expires_at)
            .await
            .expect("delete_expired"),
        1
    );
    assert_eq!(
        store
            .take_oauth_flow(&young.id_hash, old.expires_at)
            .await
            .expect("take"),
        Some(young)
    );
}

/// Of 16 callbacks taking one flow at once, exactly one gets it.
pub async fn concurrent_takes_of_one_oauth_flow_succeed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let flow = oauth_flow(clock.now());
    store.create_oauth_flow(&flow).await.expect("create");
    let now = clock.now();
    let results = race(RACERS, |_| {
        let store = Arc::clone(&store);
        let hash = flow.id_hash;
        async move { store.take_oauth_flow(&hash, now).await }
    })
    .await;
    let errors: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(errors.is_empty(), "no take fails: {errors:?}");
    let got = results.into_iter().filter_map(|r| r.ok().flatten()).count();
    assert_eq!(got, 1, "exactly one take gets the flow");
}
