//! # keystead-conformance
//!
//! The one conformance suite that every [`AuthStore`] passes: the same behaviour tests, run
//! against `keystead-postgres` and `keystead-sqlite` (as tower-sessions runs one suite against every
//! store). The semantics it checks are those documented on the traits in
//! [`keystead::store`]; each case is named after the behaviour it checks.
//!
//! A store crate implements [`Harness`] (a fresh, empty, migrated store per case) and expands
//! [`conformance_suite!`] once, in `tests/conformance.rs`:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use keystead_conformance::{Harness, conformance_suite};
//! use keystead::AuthStore;
//!
//! # async fn open_fresh_store() -> (Arc<dyn AuthStore>, String) { unimplemented!() }
//! # async fn drop_database(_name: &str) {}
//! struct MyHarness {
//!     store: Arc<dyn AuthStore>,
//!     database: String,
//! }
//!
//! #[keystead_conformance::async_trait]
//! impl Harness for MyHarness {
//!     async fn setup() -> Self {
//!         let (store, database) = open_fresh_store().await;
//!         Self { store, database }
//!     }
//!
//!     fn store(&self) -> Arc<dyn AuthStore> {
//!         Arc::clone(&self.store)
//!     }
//!
//!     async fn teardown(self) {
//!         drop(self.store);
//!         drop_database(&self.database).await;
//!     }
//! }
//!
//! conformance_suite!(MyHarness);
//! # fn main() {}
//! ```
//!
//! The crate that expands the macro needs `tokio` (features `macros` and `rt-multi-thread`)
//! among its dev-dependencies: every case is a
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]`, so that the race cases
//! really run in parallel.
//!
//! Every case gets its own store and leaves it to [`Harness::teardown`], also when it fails.
//! Times come from a [`ManualClock`](keystead::ManualClock) that the case moves forward:
//! nothing sleeps. The race cases line up their tasks on a [`tokio::sync::Barrier`] and fail
//! when any task panics.
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keystead::AuthStore;

pub mod cases;
pub mod fixtures;
pub mod webauthn;

pub use async_trait::async_trait;

/// How to get a fresh store for one case, and how to clean up after it.
#[async_trait::async_trait]
pub trait Harness: Send + Sized + 'static {
    /// A fresh, empty, migrated store (Postgres: a new database; SQLite: a new file).
    async fn setup() -> Self;
    /// The store under test.
    fn store(&self) -> Arc<dyn AuthStore>;
    /// Releases what setup made (drops the database, deletes the file).
    async fn teardown(self);
}

/// How long one case may run before it counts as hung (a deadlock in a store, say).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one case against a fresh store from `H`: set up, run the case, tear down (also when
/// the case panics), then report the case's outcome.
///
/// [`conformance_suite!`] calls this for every case; call it yourself to run one case, e.g.
/// `run_case::<MyHarness, _>(keystead_conformance::cases::one_time_token_is_consumed_once)`.
///
/// # Panics
/// When the case panics (with the case's panic) or runs longer than [`CASE_TIMEOUT`].
pub async fn run_case<H, Fut>(case: impl FnOnce(Arc<dyn AuthStore>) -> Fut)
where
    H: Harness,
    Fut: Future<Output = ()> + Send + 'static,
{
    let harness = H::setup().await;
    let running = tokio::spawn(tokio::time::timeout(CASE_TIMEOUT, case(harness.store())));
    let outcome = running.await;
    harness.teardown().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_elapsed)) => {
            panic!("the case did not finish within {CASE_TIMEOUT:?}: a deadlock or a lost wake-up?")
        }
        Err(join_error) => match join_error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(join_error) => panic!("the case's task failed: {join_error}"),
        },
    }
}

/// Expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per case,
/// each: setup a fresh harness, run `$crate::cases::<name>(harness.store()).await`, teardown.
///
/// The tests are named after the cases (see [`CASES`]), so
/// `cargo test --test conformance last_owner` runs the last-owner cases.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:ty) => {
        $crate::__with_cases!(__suite_tests($harness));
    };
}

/// The one list of cases. Calls `$crate::$callback!` with the arguments in parentheses and
/// the names in brackets; [`conformance_suite!`] and [`CASES`] are both made from it, and a
/// unit test checks that it names every `pub async fn` in [`cases`].
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident ( $($args:tt)* )) => {
        $crate::$callback! {
            ( $($args)* )
            [
                // Users and passwords.
                created_user_round_trips_every_field,
                user_lookups_of_missing_rows_give_none,
                second_user_with_same_email_in_other_case_is_refused,
                second_user_with_same_id_is_refused,
                create_user_with_password_stores_the_credential,
                create_user_without_password_stores_no_credential,
                set_user_name_sets_and_clears_the_name,
                mark_email_verified_keeps_the_first_time,
                set_password_hash_sets_and_replaces_the_hash,
                remove_password_reports_whether_there_was_one,
                updates_of_unknown_users_are_not_found,
                delete_user_removes_everything_that_is_theirs,
                delete_user_keeps_audit_events_with_user_refs_cleared,
                delete_user_of_unknown_user_is_not_found,
                last_owner_cannot_be_deleted,
                // External accounts.
                external_account_round_trips_every_field,
                external_account_lookups_of_missing_rows_give_none,
                linking_a_linked_identity_is_refused,
                linking_for_unknown_user_is_not_found,
                external_accounts_for_user_are_oldest_first,
                touch_external_account_records_email_and_time,
                unlink_external_account_removes_only_the_users_link,
                linking_a_second_identity_at_a_provider_is_refused,
                // Sessions.
                session_round_trips_every_field,
                session_lookups_of_missing_rows_give_none,
                session_lookups_return_expired_sessions,
                session_for_unknown_user_is_not_found,
                session_with_duplicate_id_or_token_hash_is_refused,
                sessions_for_user_lists_live_sessions_newest_first,
                extend_session_moves_expiry_and_clamps_to_absolute_expiry,
                record_session_activity_ignores_earlier_times_and_unknown_ids,
                record_session_activity_keeps_the_latest_of_repeated_ids,
                set_active_org_sets_and_clears_the_active_org,
                delete_session_reports_whether_it_existed,
                delete_sessions_for_user_keeps_the_excepted_session,
                clear_active_org_for_member_clears_only_that_org_and_user,
                delete_expired_sessions_removes_only_expired_sessions,
                // Organizations and memberships.
                organization_round_trips_and_creator_is_owner,
                organization_lookups_of_missing_rows_give_none,
                organization_with_taken_slug_is_refused,
                organization_for_unknown_owner_is_not_found,
                rename_organization_renames_it,
                delete_organization_removes_memberships_invitations_and_api_tokens,
                organizations_for_user_are_oldest_membership_first,
                members_are_oldest_membership_first_with_user_records,
                add_member_refuses_members_and_unknown_rows,
                change_role_changes_only_the_role,
                change_role_and_remove_member_of_non_members_are_not_found,
                last_owner_cannot_be_demoted,
                last_owner_cannot_be_removed,
                transfer_ownership_swaps_the_roles,
                transfer_ownership_refuses_non_members_and_non_owners,
                // Invitations.
                invitation_round_trips_every_field,
                invitation_lookups_of_missing_rows_give_none,
                invitation_with_duplicate_token_hash_is_refused,
                invitation_for_unknown_org_or_inviter_is_not_found,
                pending_invitations_are_the_live_ones_newest_first,
                revoke_invitation_revokes_only_pending_invitations_of_the_org,
                accept_invitation_marks_it_used_and_adds_the_membership,
                accept_invitation_refuses_unknown_used_revoked_and_expired_invitations,
                accept_invitation_by_a_member_is_a_conflict_and_changes_nothing,
                // One-time tokens.
                one_time_token_is_consumed_once,
                consume_refuses_wrong_purpose_expired_and_unknown_tokens,
                one_time_token_with_duplicate_hash_is_refused,
                one_time_token_for_unknown_user_is_not_found,
                delete_one_time_tokens_deletes_the_users_tokens_of_one_purpose,
                delete_expired_one_time_tokens_removes_expired_and_used_tokens,
                // Sign-in flows with a provider.
                oauth_flow_round_trips_every_field_and_is_taken_once,
                expired_oauth_flow_is_not_given_out,
                oauth_flow_duplicates_and_unknown_users_are_refused,
                delete_expired_oauth_flows_removes_only_expired_flows,
                // API tokens.
                api_token_round_trips_every_field,
                api_token_lookup_of_missing_id_gives_none,
                api_token_with_duplicate_id_is_refused,
                api_token_for_unknown_user_or_org_is_not_found,
                api_tokens_for_org_are_newest_first_and_filter_by_user,
                revoke_api_token_keeps_the_first_time,
                revoke_api_tokens_for_member_revokes_only_their_live_tokens,
                record_api_token_use_ignores_earlier_times_and_unknown_ids,
                record_api_token_use_keeps_the_latest_of_repeated_ids,
                revoked_api_token_ids_lists_revoked_unexpired_tokens,
                // Imports and operators.
                imported_user_round_trips_external_id_password_and_links,
                refused_import_writes_nothing,
                concurrent_imports_of_one_external_id_create_one_user,
                set_user_disabled_keeps_the_first_time_and_enables,
                session_handoff_is_claimed_once_under_concurrency,
                organizations_page_by_id_and_are_found_by_external_id,
                audit_events_filter_by_kind_and_time,
                // Audit log.
                audit_event_round_trips_every_field,
                audit_events_filter_by_user_and_org_newest_first,
                audit_events_page_with_before_and_limit,
                delete_audit_events_before_removes_only_older_events_in_batches,
                http_audit_export_quotes_cells_and_defuses_formulas,
                http_audit_export_past_its_cap_names_the_cursor_of_the_rest,
                // Races.
                concurrent_sign_ups_with_one_email_create_one_user,
                concurrent_creates_of_one_slug_create_one_organization,
                concurrent_adds_of_one_member_create_one_membership,
                owners_demoting_each_other_at_once_leave_one_owner,
                owners_removing_each_other_at_once_leave_one_owner,
                owners_deleting_themselves_at_once_leave_one_owner,
                concurrent_consumes_of_one_token_succeed_once,
                concurrent_accepts_of_one_invitation_succeed_once,
                concurrent_takes_of_one_oauth_flow_succeed_once,
                // Rate limits.
                rate_limit_allows_exactly_the_limit_then_refuses_with_retry_after,
                rate_limit_frees_up_one_event_per_interval,
                rate_limit_peek_does_not_consume,
                rate_limit_keys_are_independent_with_their_own_rules,
                rate_limit_refund_gives_back_one_event,
                delete_expired_rate_limits_removes_only_idle_keys,
                concurrent_hits_on_one_key_allow_exactly_the_limit,
                // Second factors and challenges.
                totp_factor_is_replaced_while_unconfirmed_and_confirmed_once,
                totp_factor_over_a_confirmed_one_is_a_conflict,
                use_totp_step_refuses_replays_and_earlier_steps,
                concurrent_uses_of_one_totp_step_succeed_once,
                concurrent_confirmations_of_one_totp_factor_succeed_once,
                recovery_codes_are_replaced_as_a_set_and_used_once,
                concurrent_uses_of_one_recovery_code_succeed_once,
                passkeys_round_trip_and_a_registered_credential_id_conflicts,
                passkeys_are_renamed_and_deleted_only_by_their_user,
                challenge_round_trips_and_is_taken_once,
                expired_challenges_are_not_given_out_and_are_deleted,
                concurrent_takes_of_one_challenge_succeed_once,
                org_access_and_members_reflect_second_factors,
                set_org_mfa_required_sets_and_clears_the_policy,
                set_session_authenticated_at_records_a_reauthentication,
                delete_user_removes_their_second_factors_and_challenges,
                // The core's session manager on this store.
                session_manager_validates_from_the_cache,
                session_manager_cached_path_defers_whatever_needs_the_store,
                session_manager_stores_only_the_token_hash,
                session_manager_refuses_unknown_tokens,
                session_manager_replayed_token_after_sign_out_is_refused,
                session_manager_staleness_across_instances_is_bounded_by_the_ttl,
                session_manager_slides_expiry_when_past_half,
                session_manager_refuses_and_deletes_expired_sessions,
                session_manager_ends_sessions_at_the_absolute_lifetime,
                session_manager_ends_idle_sessions,
                session_manager_batches_activity_writes,
                session_manager_ends_all_sessions_of_a_user_but_one,
                session_manager_rotation_replaces_id_and_token,
                session_manager_active_org_change_is_seen_at_once,
                session_manager_refuses_sessions_of_deleted_users,
                // The core's account flows on this store.
                accounts_sign_up_creates_a_session_and_mails_a_link_that_verifies_once,
                accounts_verification_link_expires_after_a_day,
                accounts_sign_up_with_taken_email_in_other_case_is_email_taken,
                accounts_sign_up_with_weak_password_creates_no_user,
                accounts_sign_in_failures_look_the_same_for_unknown_and_known_emails,
                accounts_each_sign_in_makes_a_new_session,
                accounts_sign_in_after_ten_failures_is_rate_limited_even_with_the_right_password,
                accounts_password_reset_for_unknown_email_sends_nothing,
                accounts_password_reset_sets_the_password_and_ends_every_session,
                accounts_password_reset_link_expires_and_is_voided_by_a_newer_one,
                accounts_reset_mails_stop_past_the_account_limit,
                accounts_change_password_ends_other_sessions_and_keeps_the_current,
                accounts_sign_in_upgrades_an_outdated_hash,
                accounts_sign_in_records_audit_events_without_the_password,
                accounts_sign_out_ends_the_session_for_good,
                // The core's HTTP routes (`Auth::handle`) on this store.
                http_sign_up_answers_201_with_a_session_cookie_and_mails_a_verification_link,
                http_sign_up_with_taken_email_in_other_case_is_409_email_taken,
                http_sign_up_with_weak_password_is_422_weak_password,
                http_malformed_json_is_400_invalid_request,
                http_wrong_or_missing_content_type_is_415,
                http_body_over_one_mebibyte_is_413_with_or_without_content_length,
                http_sign_in_answers_200_with_a_new_session_cookie,
                http_sign_in_failures_for_unknown_email_and_wrong_password_are_identical,
                http_sign_out_clears_the_cookie_and_the_replayed_cookie_is_401,
                http_session_has_the_contract_shape,
                http_sessions_lists_the_users_sessions_with_the_current_flag,
                http_delete_session_ends_own_sessions_and_hides_other_users_sessions,
                http_sign_out_everywhere_ends_every_session,
                http_verify_email_by_post_and_by_link_each_work_once,
                http_password_reset_answers_202_alike_and_mails_only_known_accounts,
                http_password_reset_confirm_sets_the_password_and_ends_every_session,
                http_expired_password_reset_link_is_400_invalid_link,
                http_change_password_keeps_this_session_and_ends_the_others,
                http_expired_session_is_401_session_expired_with_a_removal_cookie,
                http_sliding_expiry_refreshes_the_cookie_and_outlives_the_first_expiry,
                http_sliding_refresh_is_sent_even_when_the_request_is_refused,
                http_cross_origin_post_with_the_cookie_is_403_csrf_rejected,
                http_origin_null_is_403_csrf_rejected,
                http_cookie_without_origin_referer_or_fetch_site_is_403,
                http_same_origin_referer_or_fetch_site_passes_the_csrf_check,
                http_sign_in_from_a_foreign_origin_is_403_login_csrf,
                http_cookieless_non_browser_sign_in_passes,
                http_bearer_token_on_session_routes_is_403_forbidden,
                http_sign_in_after_ten_failures_is_429_until_the_window_passes,
                http_change_password_guesses_count_toward_the_sign_in_limit,
                // Second factors and step-up, with the test clock.
                http_totp_codes_follow_the_clock_and_are_used_once,
                http_pending_sign_in_expires_and_completes_once,
                http_step_up_expires_with_the_clock,
                http_totp_without_a_key_is_503,
                http_unknown_path_is_404_and_wrong_method_is_405_with_allow,
                http_created_org_becomes_the_active_org_with_owner_permissions,
                http_switching_to_an_org_the_user_is_not_in_is_403,
                http_audit_events_record_sign_ins_sign_outs_resets_verifications_and_revocations,
                // Organizations, members, roles and invitations over `Auth::handle`.
                http_org_invitation_is_accepted_once_by_the_verified_invitee,
                http_org_expired_or_revoked_invitations_are_invalid_links,
                http_org_inviters_cannot_invite_above_their_role,
                http_org_role_changes_follow_the_owner_rules,
                http_org_removal_and_leaving_follow_the_owner_rules,
                http_org_ownership_transfer_and_deletion_need_an_owner,
                http_org_owners_demoting_each_other_at_once_leave_one_owner,
                http_org_concurrent_accepts_of_one_invitation_succeed_once,
                http_org_member_removed_during_their_requests_loses_access_at_once,
                http_org_admin_cannot_touch_a_member_promoted_to_owner_at_once,
                // API tokens over `Auth::handle` and `Auth::authenticate`.
                api_tokens_http_token_is_created_and_allows_exactly_its_scopes,
                api_tokens_http_forged_tokens_are_401_token_invalid,
                api_tokens_http_token_claims_are_checked_beyond_the_signature,
                api_tokens_http_token_expires_with_the_clock,
                api_tokens_http_revoked_token_is_401_token_revoked_at_once,
                api_tokens_http_revocation_list_is_pruned_by_expiry,
                api_tokens_http_other_authorization_schemes_are_not_bearer,
                api_tokens_http_token_with_bytes_that_are_not_text_is_token_invalid,
                api_tokens_http_token_of_a_removed_owner_is_401_token_revoked,
                api_tokens_http_token_of_a_demoted_owner_loses_what_the_role_no_longer_grants,
                api_tokens_http_token_requests_are_validated,
                api_tokens_http_list_own_tokens_or_all_with_tokens_manage,
                api_tokens_http_token_use_and_lifecycle_are_recorded,
                api_tokens_http_jwks_publishes_the_signing_keys_through_rotation,
                // Sign-in with a provider over `Auth::handle`.
                oauth_http_flow_expires_after_ten_minutes_and_is_used_once,
                oauth_http_takeover_cleanup_is_audited_and_links_need_the_same_user,
                oauth_http_flow_starts_are_rate_limited_per_address,
                // Changes that must reach every instance; the background tasks.
                spread_revocation_reaches_an_instance_whose_feed_missed_it,
                spread_membership_change_reaches_an_instance_whose_feed_missed_it,
                spread_key_rotation_reaches_the_other_instance,
                spread_a_new_organization_reaches_the_session_cached_on_another_instance,
                spread_a_sign_out_reaches_the_session_cached_on_another_instance,
                spread_accepting_an_invitation_announces_the_tokens_it_revokes,
                spread_an_instance_without_spawned_tasks_still_gets_revocations,
                spread_background_tasks_prune_expired_rows,
                spread_token_use_is_written_within_five_seconds,
                change_log_versions_follow_commits_without_gaps,
                change_log_old_entries_are_deleted_and_the_version_stays,
                oauth_http_claiming_an_address_ends_every_other_identity_of_the_account,
                oauth_http_linking_needs_a_verified_email,
                oauth_http_linking_by_email_is_a_setting_of_the_provider,
            ]
        }
    };
}

/// Turns the case list into test functions. Not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    (($harness:ty) [$($case:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::run_case::<$harness, _>($crate::cases::$case).await;
            }
        )*
    };
}

/// Turns the case list into a slice of names. Not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (() [$($case:ident),* $(,)?]) => {
        &[$(::core::stringify!($case)),*]
    };
}

/// The names of all cases, in the order [`conformance_suite!`] expands them; each is a
/// function in [`cases`].
pub const CASES: &[&str] = __with_cases!(__case_names());

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::CASES;

    /// The names of the `pub async fn`s in `src/cases/`, read from the sources.
    fn case_functions() -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cases");
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("src/cases is readable") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).expect("a case file is readable");
                for line in source.lines() {
                    if let Some(rest) = line.trim_start().strip_prefix("pub async fn ") {
                        let name = rest.split('(').next().expect("split yields one part");
                        assert!(
                            names.insert(name.to_owned()),
                            "case {name} is defined twice"
                        );
                    }
                }
            }
        }
        names
    }

    #[test]
    fn the_macro_lists_every_case_of_the_cases_module() {
        let listed: BTreeSet<String> = CASES.iter().map(|&c| c.to_owned()).collect();
        assert_eq!(listed.len(), CASES.len(), "a case is listed twice");
        let defined = case_functions();
        let unlisted: Vec<_> = defined.difference(&listed).collect();
        let undefined: Vec<_> = listed.difference(&defined).collect();
        assert!(
            unlisted.is_empty(),
            "cases missing from __with_cases!: {unlisted:?}"
        );
        assert!(
            undefined.is_empty(),
            "listed but not defined: {undefined:?}"
        );
    }
}
