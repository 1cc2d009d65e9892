//! SQLite has one writer at a time. These tests run two stores on one file (as two
//! processes would) and check that read-then-write transactions stay race-free and that
//! contention waits instead of failing with `database is locked`.

use std::sync::Arc;

use keystead::{
    Clock, Email, ManualClock, Membership, NewUser, OneTimeToken, OneTimeTokenId,
    OneTimeTokenStore, OrgId, Organization, OrganizationStore, Role, StoreError, TokenHash,
    TokenPurpose, User, UserId, UserStore,
};
use keystead_sqlite::SqliteStore;
use time::Duration;
use tokio::sync::Barrier;

async fn two_stores() -> (tempfile::TempDir, Arc<SqliteStore>, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    (dir, Arc::new(a), Arc::new(b))
}

async fn user(store: &SqliteStore, email: &str, clock: &ManualClock) -> User {
    let user = User {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        name: None,
        email_verified_at: None,
        created_at: clock.now(),
        external_id: None,
        disabled_at: None,
    };
    store
        .create_user(&NewUser {
            user,
            password_hash: None,
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_removing_each_other_through_two_stores_leave_one_owner() {
    let clock = ManualClock::starting_now();
    let (_dir, a, b) = two_stores().await;
    let x = user(&a, "x@example.com", &clock).await;
    let y = user(&a, "y@example.com", &clock).await;
    let org = Organization {
        id: OrgId::new(),
        name: "Acme".to_owned(),
        slug: "acme".to_owned(),
        created_at: clock.now(),
        external_id: None,
        mfa_required: false,
    };
    a.create_organization(&org, x.id).await.unwrap();

    for round in 0..25 {
        // Make sure both are owners, then have each store remove one of them at once.
        for who in [x.id, y.id] {
            match a.membership(org.id, who).await.unwrap() {
                Some(_) => {
                    a.change_role(org.id, who, &Role::OWNER).await.unwrap();
                }
                None => a
                    .add_member(&Membership {
                        org_id: org.id,
                        user_id: who,
                        role: Role::OWNER,
                        joined_at: clock.now(),
                    })
                    .await
                    .unwrap(),
            }
        }
        let barrier = Arc::new(Barrier::new(2));
        let run = |store: Arc<SqliteStore>, who: UserId, barrier: Arc<Barrier>| {
            let org_id = org.id;
            tokio::spawn(async move {
                barrier.wait().await;
                if round % 2 == 0 {
                    store.remove_member(org_id, who).await
                } else {
                    store
                        .change_role(org_id, who, &Role::MEMBER)
                        .await
                        .map(|_| ())
                }
            })
        };
        let first = run(Arc::clone(&a), x.id, Arc::clone(&barrier));
        let second = run(Arc::clone(&b), y.id, barrier);
        let results = [first.await.unwrap(), second.await.unwrap()];
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let last_owner = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::LastOwner)))
            .count();
        assert_eq!((ok, last_owner), (1, 1), "round {round}: {results:?}");
        let owners = b
            .members(org.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.membership.role.is_owner())
            .count();
        assert_eq!(owners, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_is_consumed_once_across_two_stores() {
    let clock = ManualClock::starting_now();
    let (_dir, a, b) = two_stores().await;
    let owner = user(&a, "t@example.com", &clock).await;
    for round in 0..20 {
        let hash = TokenHash::of(&format!("token-{round}"));
        a.create_one_time_token(&OneTimeToken {
            id: OneTimeTokenId::new(),
            purpose: TokenPurpose::PasswordReset,
            user_id: owner.id,
            token_hash: hash,
            email: None,
            created_at: clock.now(),
            expires_at: clock.now() + Duration::hours(1),
            used_at: None,
        })
        .await
        .unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 {
                    Arc::clone(&a)
                } else {
                    Arc::clone(&b)
                };
                let barrier = Arc::clone(&barrier);
                let now = clock.now();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .consume_one_time_token(TokenPurpose::PasswordReset, &hash, now)
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if task
                .await
                .unwrap()
                .expect("no error, in particular not `database is locked`")
                .is_some()
            {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_load_on_two_stores_never_reports_the_database_locked() {
    let clock = Arc::new(ManualClock::starting_now());
    let (_dir, a, b) = two_stores().await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = if t % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let clock = Arc::clone(&clock);
            tokio::spawn(async move {
                for i in 0..25 {
                    let created = user(&store, &format!("load-{t}-{i}@example.com"), &clock).await;
                    let org = Organization {
                        id: OrgId::new(),
                        name: "Org".to_owned(),
                        slug: format!("org-{t}-{i}"),
                        created_at: clock.now(),
                        external_id: None,
                        mfa_required: false,
                    };
                    store.create_organization(&org, created.id).await.unwrap();
                    assert_eq!(
                        store
                            .organizations_for_user(created.id)
                            .await
                            .unwrap()
                            .len(),
                        1
                    );
                    store.set_user_name(created.id, Some("Load")).await.unwrap();
                    assert!(matches!(
                        store.delete_user(created.id).await,
                        Err(StoreError::LastOwner)
                    ));
                    store.delete_organization(org.id).await.unwrap();
                    store.delete_user(created.id).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("no task failed");
    }
    assert!(
        a.user_by_email(&Email::parse("load-0-0@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}
