//! The cases of the contract: one `pub async fn(&AppUnderTest)` each, named after the
//! behaviour it checks. Each starts from a fresh app and store, so cases are independent.
//!
//! The list below, [`__case_list!`](crate::__case_list), is the one place that names them all;
//! [`contract_suite!`](crate::contract_suite) makes one test per entry and store, and a unit
//! test checks that the list and the `pub async fn`s in this folder are the same set.

mod accounts;
mod api;
mod audit;
mod conventions;
mod csrf;
mod email;
mod handoff;
mod health;
mod limits;
mod metrics;
mod mfa;
mod oauth;
mod openapi;
mod orgs;
mod pages;
mod passkeys;
mod passwords;
mod rotation;
mod sessions;
mod tokens;

pub use accounts::*;
pub use api::*;
pub use audit::*;
pub use conventions::*;
pub use csrf::*;
pub use email::*;
pub use handoff::*;
pub use health::*;
pub use limits::*;
pub use metrics::*;
pub use mfa::*;
pub use oauth::*;
pub use openapi::*;
pub use orgs::*;
pub use pages::*;
pub use passkeys::*;
pub use passwords::*;
pub use rotation::*;
pub use sessions::*;
pub use tokens::*;

/// Calls `$callback!` with `($($args)*)` followed by the bracketed list of every case.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_list {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! { ($($args)*) [
            // The OpenAPI document, and schemathesis driving the app from it.
            openapi_document_names_every_route_of_the_contract,
            schemathesis_finds_no_server_error_or_schema_violation,
            // The audit log, read: the organization's, its export, the user's own, the pages.
            org_audit_log_is_for_admins_and_owners_and_filters,
            org_audit_log_pages_with_a_cursor_without_gaps_or_duplicates,
            org_audit_export_is_jsonl_or_csv_with_cells_escaped,
            security_events_are_the_users_own,
            audit_pages_render_for_admins_and_the_user,
            // Accounts: sign-up, sign-in, sign-out, the current session.
            sign_up_creates_the_user_and_sets_a_session_cookie,
            sign_up_sends_a_verification_mail,
            sign_up_with_a_taken_email_is_409_case_insensitively,
            sign_up_refuses_weak_passwords,
            sign_up_accepts_unicode_passwords,
            sign_in_returns_the_user_and_a_new_session_cookie,
            sign_in_ignores_the_case_of_the_email,
            sign_in_failures_look_the_same_for_a_wrong_password_and_an_unknown_email,
            sign_out_clears_the_cookie_and_ends_the_session,
            session_shows_the_user_and_no_organization,
            handoff_swaps_the_old_providers_session_for_ours_once,
            handoff_refuses_old_sessions_once_the_window_closed,
            health_and_readiness_answer_without_a_credential,
            metrics_count_the_traffic_sent,
            session_without_a_cookie_is_401_with_a_bearer_challenge,
            // The user's sessions.
            sessions_list_each_sign_in_and_mark_the_current_one,
            deleting_a_session_ends_it,
            deleting_another_users_session_is_404,
            sign_out_everywhere_ends_every_session,
            // Mailed links.
            verify_email_with_the_mailed_token,
            verify_email_with_a_garbage_token_is_invalid_link,
            verify_email_link_redirects_to_the_dashboard,
            password_reset_answers_alike_for_known_and_unknown_emails,
            password_reset_confirm_sets_the_password_and_ends_every_session,
            password_reset_confirm_with_a_garbage_token_is_invalid_link,
            // Passwords.
            change_password_keeps_this_session_and_ends_the_others,
            change_password_with_a_wrong_current_password_is_401,
            // The session id changes with the session's privileges.
            change_password_rotates_the_session_id,
            verify_email_with_the_session_rotates_it,
            switching_the_active_org_rotates_the_session_id,
            own_role_changes_rotate_the_session_id,
            // CSRF.
            csrf_rejects_a_foreign_origin_and_the_session_survives,
            csrf_rejects_a_null_origin,
            csrf_rejects_a_cookie_without_origin_or_referer,
            csrf_accepts_a_referer_on_the_app_origin,
            csrf_accepts_sec_fetch_site_same_origin,
            sign_in_from_a_foreign_origin_is_rejected,
            sign_in_without_origin_referer_or_cookie_is_accepted,
            // Rate limits.
            sign_in_is_rate_limited_per_email_after_ten_failures,
            sign_in_is_rate_limited_for_an_unknown_email,
            malformed_email_sign_ins_are_rate_limited_per_address,
            sign_in_limit_keys_on_the_address_a_trusted_proxy_appended,
            // Conventions.
            malformed_json_is_400_invalid_request,
            wrong_content_type_is_415,
            oversized_body_is_413_payload_too_large,
            errors_are_problem_json,
            unknown_auth_path_is_404,
            wrong_method_on_an_auth_path_is_405,
            bearer_token_on_session_routes_is_forbidden,
            // The app's pages.
            landing_page_is_html,
            sign_in_and_sign_up_pages_have_their_forms,
            dashboard_without_a_session_redirects_to_sign_in,
            dashboard_with_a_session_shows_the_users_email,
            sign_in_and_sign_up_forms_post_without_the_script,
            the_page_script_follows_next_only_to_local_paths,
            percent_encoded_dashboard_without_a_session_redirects_to_sign_in,
            // Organizations and the app's API.
            api_without_credentials_is_401_with_a_bearer_challenge,
            api_with_a_session_but_no_org_is_403,
            creating_an_org_makes_it_active_with_the_owner_role,
            owner_lists_projects,
            owner_starts_a_deployment,
            owner_reads_billing,
            // Members, roles and invitations.
            permission_matrix_holds_for_every_role_and_route,
            members_and_invitations_have_the_contract_shape,
            invitation_is_accepted_once_by_the_verified_invitee,
            role_changes_keep_an_owner_and_only_owners_touch_owners,
            removed_member_loses_access_at_once,
            invitation_link_and_members_page_work_in_a_browser,
            api_token_cannot_act_on_its_owner_beyond_its_scope,
            // API tokens.
            api_token_is_issued_and_works_on_the_api,
            api_token_without_the_scope_is_403_insufficient_scope,
            api_token_scopes_are_validated,
            revoked_and_forged_tokens_are_refused,
            jwks_publishes_the_token_keys,
            api_token_creation_is_rate_limited_per_user,
            api_token_expiry_refuses_absurd_numbers,
            // Second factors and step-up.
            totp_enrolment_is_confirmed_by_a_first_code,
            sign_in_with_totp_needs_the_second_step_and_refuses_replays,
            recovery_codes_work_once_and_a_new_set_voids_the_old,
            step_up_routes_need_a_recent_authentication,
            org_mfa_policy_holds_back_members_without_a_factor,
            second_factor_attempts_are_rate_limited_per_user,
            provider_sign_in_of_a_user_with_a_factor_waits_for_it,
            passkeys_register_sign_in_and_serve_as_second_factor,
            // Sign-in with a provider (a real OpenID provider: tests/oidc-provider).
            oauth_sign_in_with_a_provider_creates_the_user_and_a_new_session,
            oauth_callback_in_another_browser_is_400_and_signs_no_one_in,
            oauth_replayed_code_fails_and_creates_no_session,
            oauth_wrong_nonce_audience_issuer_or_signature_fails_and_creates_nothing,
            oauth_provider_key_rotation_is_followed,
            oauth_next_outside_the_site_is_refused_at_the_start,
            oauth_verified_email_links_and_ends_an_unverified_pre_registration,
            oauth_unverified_email_of_an_existing_user_is_refused,
            oauth_providers_are_linked_listed_and_unlinked_but_not_the_last,
            oauth_id_tokens_with_time_claims_far_from_now_are_refused,
            oauth_a_squatters_linked_identity_does_not_survive_the_owners_claim,
            oauth_generic_provider_links_by_email_only_when_configured,
        ] }
    };
}
