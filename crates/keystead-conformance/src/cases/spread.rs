//! Changes that must reach every instance, on each real store: two [`Auth`] instances over
//! one store, each with a change feed of its own that never carries anything to the other
//! (the worst a feed can do: every publish lost). Revocations, membership changes and key
//! rotations made through one instance still reach the other within the staleness bound,
//! through the store's change log; an instance that never called `spawn_background_tasks`
//! still applies them; accepting an invitation announces the tokens it revokes; expired rows
//! are pruned by the background tasks; `last_used_at` is written within seconds.

use std::future::Future;
use std::sync::Arc;

use http::StatusCode;
use keystead::accounts::ClientInfo;
use keystead::mail::MemoryMailer;
use keystead::tokens::{
    Change, ChangeFeed, DirKeyStore, InProcessFeed, KeyAlgorithm, KeyRing, TokenConfig,
};
use keystead::web::AppOrigin;
use keystead::{Auth, AuthStore, Clock, ErrorCode, ManualClock, PasswordConfig, Role};
use time::Duration;

use super::api_tokens_http::{
    TokenApp, accepted, assert_refused, bearer, create_org, issue, join, jwks, kids, parts, person,
    token_app,
};
use super::http_routes::{App, ORIGIN, Req, assert_status, json_of};
use crate::fixtures;

/// The staleness bound of the default [`TokenConfig`] (1 s), and some slack for a loaded
/// machine: what "within the bound" is checked against.
const BOUND: std::time::Duration = std::time::Duration::from_millis(1_500);

/// Polls `check` every 10 ms until it holds or `limit` passed; whether it held.
async fn within<F, Fut>(limit: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A second instance over `t`'s store, clock and key directory, with `feed` as its change
/// feed (its own, when `None`: a fresh in-process feed that hears nothing from `t`).
async fn second_instance(
    store: &Arc<dyn AuthStore>,
    t: &TokenApp,
    feed: Option<Arc<dyn ChangeFeed>>,
) -> App {
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(t.keys_dir.path()).expect("a key store")),
        t.app.clock.clone(),
        KeyAlgorithm::EdDSA,
        Duration::days(365),
    )
    .await
    .expect("a key ring");
    let mailer = MemoryMailer::default();
    let feed = feed.unwrap_or_else(|| Arc::new(InProcessFeed::new()));
    let auth = Auth::builder(
        store.clone(),
        AppOrigin::parse(ORIGIN).expect("a valid origin"),
    )
    .clock(t.app.clock.clone())
    .mailer(Arc::new(mailer.clone()))
    .password_hashing(
        PasswordConfig::new()
            .argon2_params(8, 1, 1)
            .expect("valid argon2 params"),
    )
    .change_feed(feed)
    .api_tokens(keys, TokenConfig::default())
    .build();
    App {
        store: store.clone(),
        clock: t.app.clock.clone(),
        mailer,
        auth,
    }
}

/// Instance A (`token_app`, on a feed of its own) and instance B (on another feed of its own):
/// nothing published on one feed ever reaches the other instance.
async fn two_instances_apart(store: &Arc<dyn AuthStore>) -> (TokenApp, App) {
    let mut t = token_app(store).await;
    // A on a feed of its own too, whatever the store's default feed is.
    t.app = second_instance(store, &t, None).await;
    let b = second_instance(store, &t, None).await;
    (t, b)
}

/// A token revoked through instance A is refused by instance B within the staleness bound,
/// though B's feed never carried the revocation (it cannot: it is not A's feed).
pub async fn spread_revocation_reaches_an_instance_whose_feed_missed_it(store: Arc<dyn AuthStore>) {
    let (t, b) = two_instances_apart(&store).await;
    let a = &t.app;
    let _tasks = (
        a.auth.spawn_background_tasks(),
        b.auth.spawn_background_tasks(),
    );
    let owner = person(a, "owner@example.com").await;
    create_org(a, &owner, "Acme").await;
    let (id, token) = issue(a, &owner, &["read:projects"]).await;
    accepted(bearer(&b, &token).await, "B, before the revocation");
    accepted(bearer(&b, &token).await, "B, from its caches");

    let response = a
        .send(
            Req::delete(&format!("/api/tokens/{id}"))
                .cookie(&owner.cookie)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_refused(&bearer(a, &token).await, ErrorCode::TokenRevoked, "A");
    let reached = within(BOUND, || async {
        bearer(&b, &token).await.failure.map(|e| e.code) == Some(ErrorCode::TokenRevoked)
    })
    .await;
    assert!(
        reached,
        "B still accepts a token revoked through A after {BOUND:?}"
    );
}

/// A demotion published through instance A takes effect on instance B (which had the old
/// role cached) within the staleness bound, though B's feed never carried it.
pub async fn spread_membership_change_reaches_an_instance_whose_feed_missed_it(
    store: Arc<dyn AuthStore>,
) {
    let (t, b) = two_instances_apart(&store).await;
    let a = &t.app;
    let _tasks = (
        a.auth.spawn_background_tasks(),
        b.auth.spawn_background_tasks(),
    );
    let owner = person(a, "owner@example.com").await;
    let org = create_org(a, &owner, "Acme").await;
    let second = person(a, "second@example.com").await;
    join(a, org, &second, Role::OWNER).await;
    let (_, token) = issue(a, &owner, &["read:projects", "billing:manage"]).await;
    let principal = accepted(bearer(&b, &token).await, "B, as an owner");
    assert!(principal.has("billing:manage"));

    store
        .change_role(org, owner.id, &Role::MEMBER)
        .await
        .expect("change_role");
    a.auth
        .publish(Change::MembershipChanged {
            org_id: org,
            user_id: owner.id,
        })
        .await;
    let reached = within(BOUND, || async {
        bearer(&b, &token)
            .await
            .principal
            .is_some_and(|p| !p.has("billing:manage"))
    })
    .await;
    assert!(reached, "B keeps the old role after {BOUND:?}");
}

/// An organization made through instance A is the session's active organization on instance
/// B too (which had the session cached, with none) within the staleness bound, though B's
/// feed never carried anything and the clock stands still (so B's session cache never
/// expires): making an organization is a membership change that every instance is told.
pub async fn spread_a_new_organization_reaches_the_session_cached_on_another_instance(
    store: Arc<dyn AuthStore>,
) {
    let (t, b) = two_instances_apart(&store).await;
    let a = &t.app;
    let _tasks = (
        a.auth.spawn_background_tasks(),
        b.auth.spawn_background_tasks(),
    );
    let owner = person(a, "owner@example.com").await;
    let org_on_b = async || json_of(&b.session(&owner.cookie).await)["org"]["id"].clone();
    assert!(org_on_b().await.is_null(), "B caches no organization");

    let org = create_org(a, &owner, "Acme").await;
    let reached = within(BOUND, || async {
        org_on_b().await == org.to_string().as_str()
    })
    .await;
    assert!(
        reached,
        "B still shows the session without its new organization after {BOUND:?}"
    );
}

/// A sign-out through instance A is refused by instance B (which had the session cached)
/// within the staleness bound, though B's feed never carried anything and the clock stands
/// still (so B's session cache never expires): ending sessions is a change every instance is
/// told, not one each learns when its cache entry runs out.
pub async fn spread_a_sign_out_reaches_the_session_cached_on_another_instance(
    store: Arc<dyn AuthStore>,
) {
    let (t, b) = two_instances_apart(&store).await;
    let a = &t.app;
    let _tasks = (
        a.auth.spawn_background_tasks(),
        b.auth.spawn_background_tasks(),
    );
    let owner = person(a, "owner@example.com").await;
    assert_status(&b.session(&owner.cookie).await, StatusCode::OK);
    assert_status(&b.session(&owner.cookie).await, StatusCode::OK);

    let response = a
        .send(Req::post("/auth/sign-out").cookie(&owner.cookie).empty())
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    let reached = within(BOUND, || async {
        b.session(&owner.cookie).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        reached,
        "B still accepts a session signed out through A after {BOUND:?}"
    );
}

/// After a key rotation on instance A, instance B accepts the tokens A signs with the new
/// key (an unknown `kid` makes B reload its keys) and serves the new key in its JWKS within
/// the staleness bound.
pub async fn spread_key_rotation_reaches_the_other_instance(store: Arc<dyn AuthStore>) {
    let (t, b) = two_instances_apart(&store).await;
    let a = &t.app;
    let _tasks = (
        a.auth.spawn_background_tasks(),
        b.auth.spawn_background_tasks(),
    );
    let owner = person(a, "owner@example.com").await;
    create_org(a, &owner, "Acme").await;
    let (_, old) = issue(a, &owner, &["read:projects"]).await;
    accepted(bearer(&b, &old).await, "B, old key");
    let old_kid = parts(&old).0["kid"].as_str().expect("a kid").to_owned();
    assert_eq!(kids(&jwks(&b).await), vec![old_kid.clone()]);

    a.clock.advance(Duration::minutes(1));
    let new_kid = a
        .auth
        .tokens()
        .expect("tokens are on")
        .keys()
        .rotate()
        .await
        .expect("rotate");
    let (_, new) = issue(a, &owner, &["read:projects"]).await;
    assert_eq!(parts(&new).0["kid"], new_kid.as_str());
    accepted(bearer(&b, &new).await, "B, a token of the new key");
    accepted(bearer(&b, &old).await, "B, the old key still verifies");
    let reached = within(BOUND, || async {
        kids(&jwks(&b).await) == vec![new_kid.clone(), old_kid.clone()]
    })
    .await;
    assert!(reached, "B's JWKS lacks the new key after {BOUND:?}");
}

/// Accepting an invitation revokes the invitee's tokens left from an earlier membership, and
/// says so: the instance (and every other) refuses them, even with the membership back.
pub async fn spread_accepting_an_invitation_announces_the_tokens_it_revokes(
    store: Arc<dyn AuthStore>,
) {
    let t = token_app(&store).await;
    let a = &t.app;
    let owner = person(a, "owner@example.com").await;
    let org = create_org(a, &owner, "Acme").await;
    let dev = person(a, "dev@example.com").await;
    join(a, org, &dev, Role::MEMBER).await;
    let (_, token) = issue(a, &dev, &["read:projects"]).await;
    accepted(bearer(a, &token).await, "while a member");

    // The membership ends behind the library's back (its tokens stay unrevoked) ...
    store
        .remove_member(org, dev.id)
        .await
        .expect("remove_member");
    // ... and the member is invited again and accepts.
    store
        .mark_email_verified(dev.id, a.clock.now())
        .await
        .expect("mark_email_verified");
    let secret = "an-invitation-token-for-dev";
    let mut invitation = fixtures::invitation(
        org,
        "dev@example.com",
        Role::MEMBER,
        owner.id,
        a.clock.now(),
    );
    invitation.token_hash = keystead::TokenHash::of(secret);
    store
        .create_invitation(&invitation)
        .await
        .expect("create_invitation");
    a.auth
        .orgs()
        .accept_invitation(
            dev.id,
            None,
            secret,
            &ClientInfo::new("203.0.113.7".parse().expect("an address")),
        )
        .await
        .expect("accept_invitation");
    assert_refused(
        &bearer(a, &token).await,
        ErrorCode::TokenRevoked,
        "a token from the earlier membership",
    );
}

/// Instances A and B share one change feed, and neither ever called
/// `spawn_background_tasks`: B still applies A's revocation within the staleness bound (its
/// tasks are its own, started with it).
pub async fn spread_an_instance_without_spawned_tasks_still_gets_revocations(
    store: Arc<dyn AuthStore>,
) {
    let feed: Arc<dyn ChangeFeed> = Arc::new(InProcessFeed::new());
    let mut t = token_app(&store).await;
    t.app = second_instance(&store, &t, Some(feed.clone())).await;
    let b = second_instance(&store, &t, Some(feed)).await;
    let a = &t.app;
    let owner = person(a, "owner@example.com").await;
    create_org(a, &owner, "Acme").await;
    let (id, token) = issue(a, &owner, &["read:projects"]).await;
    accepted(bearer(&b, &token).await, "B, before the revocation");

    a.auth
        .tokens()
        .expect("tokens are on")
        .revoke(id.parse().expect("a token id"), owner.id)
        .await
        .expect("revoke");
    let reached = within(BOUND, || async {
        bearer(&b, &token).await.failure.map(|e| e.code) == Some(ErrorCode::TokenRevoked)
    })
    .await;
    assert!(
        reached,
        "B, without spawn_background_tasks, accepts a revoked token after {BOUND:?}"
    );
}

/// The background tasks prune what has expired: rate-limit keys back to a full burst,
/// sessions, one-time tokens and provider flows.
pub async fn spread_background_tasks_prune_expired_rows(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let now = clock.now();
    let user = store
        .create_user(&fixtures::new_user("old@example.com"))
        .await
        .expect("create_user");
    let key = fixtures::token_hash();
    let rule = keystead::RateLimit::new(5, Duration::minutes(1));
    assert!(
        store
            .rate_limit_hit(&key, rule, now)
            .await
            .expect("hit")
            .allowed
    );
    store
        .create_session(&fixtures::session(user.id, now))
        .await
        .expect("create_session");
    store
        .create_one_time_token(&fixtures::one_time_token(
            user.id,
            keystead::TokenPurpose::PasswordReset,
            now,
        ))
        .await
        .expect("create_one_time_token");
    store
        .create_oauth_flow(&fixtures::oauth_flow(now))
        .await
        .expect("create_oauth_flow");
    // Everything above has expired a day later.
    clock.advance(Duration::days(2));

    let auth = Auth::builder(
        store.clone(),
        AppOrigin::parse(ORIGIN).expect("a valid origin"),
    )
    .clock(clock.clone())
    .mailer(Arc::new(MemoryMailer::default()))
    .build();
    let _tasks = auth.spawn_background_tasks();
    let later = clock.now();
    // The first sweep runs as the tasks start; looking sweeps too, so look once, later.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        store
            .delete_expired_rate_limits(later)
            .await
            .expect("delete_expired_rate_limits"),
        0,
        "the idle rate-limit key was pruned"
    );
    assert_eq!(
        store
            .delete_expired_sessions(later)
            .await
            .expect("delete_expired_sessions"),
        0,
        "the expired session was pruned"
    );
    assert_eq!(
        store
            .delete_expired_one_time_tokens(later)
            .await
            .expect("delete_expired_one_time_tokens"),
        0,
        "the expired one-time token was pruned"
    );
    assert_eq!(
        store
            .delete_expired_oauth_flows(later)
            .await
            .expect("delete_expired_oauth_flows"),
        0,
        "the expired flow was pruned"
    );
}

/// With the default settings a token's use reaches `last_used_at` within five seconds.
pub async fn spread_token_use_is_written_within_five_seconds(store: Arc<dyn AuthStore>) {
    let t = token_app(&store).await;
    let a = &t.app;
    let _tasks = a.auth.spawn_background_tasks();
    let owner = person(a, "owner@example.com").await;
    create_org(a, &owner, "Acme").await;
    let (id, token) = issue(a, &owner, &["read:projects"]).await;
    let id = id.parse().expect("a token id");
    accepted(bearer(a, &token).await, "a use");
    let written = within(std::time::Duration::from_millis(5_500), || async {
        store
            .api_token(id)
            .await
            .expect("api_token")
            .is_some_and(|r| r.last_used_at.is_some())
    })
    .await;
    assert!(written, "last_used_at not written within five seconds");
}
