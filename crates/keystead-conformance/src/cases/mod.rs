//! The cases: one `pub async fn` per behaviour, named after it, taking the store under test.
//!
//! Each case starts from an empty store and makes what it needs through the store's own API.
//! Times come from a [`ManualClock`](keystead::ManualClock) started at the current time and
//! moved forward by the case. Records that are listed in an order are made in that order
//! (their UUID v7 ids agree with their times) but written in another, so a store that forgets
//! its `ORDER BY` fails.
//!
//! Every case is listed in [`CASES`](crate::CASES) and expanded by
//! [`conformance_suite!`](crate::conformance_suite).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use keystead::{
    AuthStore, Conflict, Membership, OrgId, Organization, Role, StoreError, StoreResult, User,
    UserId,
};
use time::OffsetDateTime;
use tokio::sync::Barrier;

use crate::fixtures;

mod accounts;
mod api_tokens;
mod api_tokens_http;
mod audit;
mod change_log;
mod external_accounts;
mod http_audit;
mod http_mfa;
mod http_orgs;
mod http_routes;
mod imports;
mod invitations;
mod mfa;
mod oauth_flows;
mod oauth_http;
mod one_time_tokens;
mod organizations;
mod races;
mod rate_limits;
mod session_manager;
mod sessions;
mod spread;
mod users;

pub use accounts::*;
pub use api_tokens::*;
pub use api_tokens_http::*;
pub use audit::*;
pub use change_log::*;
pub use external_accounts::*;
pub use http_audit::*;
pub use http_mfa::*;
pub use http_orgs::*;
pub use http_routes::*;
pub use imports::*;
pub use invitations::*;
pub use mfa::*;
pub use oauth_flows::*;
pub use oauth_http::*;
pub use one_time_tokens::*;
pub use organizations::*;
pub use races::*;
pub use rate_limits::*;
pub use session_manager::*;
pub use sessions::*;
pub use spread::*;
pub use users::*;

/// Creates a user with this email (no password).
async fn given_user(store: &dyn AuthStore, address: &str) -> User {
    store
        .create_user(&fixtures::new_user(address))
        .await
        .unwrap_or_else(|e| panic!("create_user({address}): {e:?}"))
}

/// Creates an organization with this slug, owned by `owner`, at `at`.
async fn given_org(
    store: &dyn AuthStore,
    slug: &str,
    owner: UserId,
    at: OffsetDateTime,
) -> Organization {
    let org = fixtures::organization(slug, at);
    store
        .create_organization(&org, owner)
        .await
        .unwrap_or_else(|e| panic!("create_organization({slug}): {e:?}"));
    org
}

/// Adds `user_id` to `org_id` as `role`, joined at `at`.
async fn given_member(
    store: &dyn AuthStore,
    org_id: OrgId,
    user_id: UserId,
    role: Role,
    at: OffsetDateTime,
) -> Membership {
    let membership = fixtures::membership(org_id, user_id, role, at);
    store
        .add_member(&membership)
        .await
        .unwrap_or_else(|e| panic!("add_member: {e:?}"));
    membership
}

/// The organization's owners.
async fn owners(store: &dyn AuthStore, org_id: OrgId) -> Vec<UserId> {
    store
        .members(org_id)
        .await
        .expect("members")
        .into_iter()
        .filter(|m| m.membership.role.is_owner())
        .map(|m| m.user.id)
        .collect()
}

/// The user's role in the organization, if a member.
async fn role_of(store: &dyn AuthStore, org_id: OrgId, user_id: UserId) -> Option<Role> {
    store
        .membership(org_id, user_id)
        .await
        .expect("membership")
        .map(|m| m.role)
}

/// A custom (app-defined) role.
fn custom_role() -> Role {
    Role::new("billing-admin").expect("a valid role name")
}

#[track_caller]
fn assert_not_found<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected Err(NotFound), got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(result: StoreResult<T>, conflict: Conflict, what: &str) {
    match result {
        Err(StoreError::Conflict(c)) if c == conflict => {}
        other => panic!("{what}: expected Err(Conflict({conflict:?})), got {other:?}"),
    }
}

#[track_caller]
fn assert_last_owner<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::LastOwner) => {}
        other => panic!("{what}: expected Err(LastOwner), got {other:?}"),
    }
}

/// Sorts a copy, for comparing results whose order is not specified.
fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort();
    items
}

/// Runs `tasks` futures made by `make` on their own tokio tasks, lined up on a barrier so
/// that they call the store at the same moment; returns their outputs in task order.
/// A panic in any task is resumed here, failing the case.
async fn race<T, Fut>(tasks: usize, mut make: impl FnMut(usize) -> Fut) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let task = make(i);
            tokio::spawn(async move {
                barrier.wait().await;
                task.await
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(tasks);
    for handle in handles {
        match handle.await {
            Ok(output) => outputs.push(output),
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("a racing task failed: {e}"),
            },
        }
    }
    outputs
}
