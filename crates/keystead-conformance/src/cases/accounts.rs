//! The core's account flows ([`Accounts`]) on each real store: sign-up, sign-in, sign-out,
//! email verification, password reset and change of password, with the attacks they defend
//! against (account enumeration, password guessing, replayed links and cookies).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use keystead::accounts::{Accounts, ClientInfo};
use keystead::mail::{MailMessage, MemoryMailer};
use keystead::session::{CreatedSession, SessionConfig, SessionManager};
use keystead::web::AppOrigin;
use keystead::{
    AuditEvent, AuditQuery, AuthError, AuthStore, Clock, ErrorCode, ManualClock, PasswordConfig,
    PasswordHasher, SecretString, User,
};
use time::Duration;

const ORIGIN: &str = "https://app.example.com";
const PASSWORD: &str = "correct horse battery staple";

/// The flows over `store`, with a manual clock, a memory mailer and cheap hashes.
struct World {
    clock: Arc<ManualClock>,
    mailer: MemoryMailer,
    accounts: Accounts,
}

fn fast_hasher(memory_kib: u32) -> PasswordHasher {
    PasswordHasher::new(
        PasswordConfig::new()
            .argon2_params(memory_kib, 1, 1)
            .expect("valid argon2 params"),
    )
}

fn world(store: &Arc<dyn AuthStore>) -> World {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = SessionManager::new(store.clone(), clock.clone(), SessionConfig::default());
    let mailer = MemoryMailer::default();
    let accounts = Accounts::new(
        store.clone(),
        clock.clone(),
        sessions,
        Arc::new(mailer.clone()),
        AppOrigin::parse(ORIGIN).expect("a valid origin"),
    )
    .with_password_hasher(fast_hasher(8));
    World {
        clock,
        mailer,
        accounts,
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        user_agent: Some("conformance/1.0".to_owned()),
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::new(s)
}

async fn sign_up(world: &World, email: &str) -> (User, CreatedSession) {
    world
        .accounts
        .sign_up(email, &secret(PASSWORD), None, &client())
        .await
        .unwrap_or_else(|e| panic!("sign_up({email}): {e:?}"))
}

async fn sign_in(world: &World, email: &str, password: &str) -> Result<CreatedSession, AuthError> {
    world
        .accounts
        .sign_in(email, &secret(password), &client())
        .await
        .map(|signed_in| match signed_in {
            keystead::accounts::SignIn::Session { session, .. } => session,
            other => panic!("a session, not {other:?}"),
        })
}

/// The token in a mailed link's `?token=` parameter, after checking the link's target.
#[track_caller]
fn token_in(message: &MailMessage, path: &str) -> String {
    let url = message.action_url.as_deref().expect("an action_url");
    let prefix = format!("{ORIGIN}{path}?token=");
    let token = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url:?} starts with {prefix:?}"));
    assert!(
        message.text.contains(url),
        "the text repeats the link for mail clients without links"
    );
    token.to_owned()
}

#[track_caller]
fn code_of<T: std::fmt::Debug>(result: Result<T, AuthError>) -> ErrorCode {
    result.expect_err("expected an error").code
}

async fn audit_events(store: &Arc<dyn AuthStore>, user: &User) -> Vec<AuditEvent> {
    store
        .audit_events(&AuditQuery {
            user_id: Some(user.id),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .expect("audit_events")
}

/// Sign-up creates the user with a session and mails a link whose token verifies once.
pub async fn accounts_sign_up_creates_a_session_and_mails_a_link_that_verifies_once(
    store: Arc<dyn AuthStore>,
) {
    let w = world(&store);
    let (user, created) = w
        .accounts
        .sign_up(
            " Ada@Example.com ",
            &secret(PASSWORD),
            Some("Ada".to_owned()),
            &client(),
        )
        .await
        .expect("sign up");
    assert_eq!(user.email.as_str(), "ada@example.com");
    assert_eq!(user.name.as_deref(), Some("Ada"));
    assert_eq!(user.email_verified_at, None);
    let stored = store.user_by_id(user.id).await.unwrap().expect("stored");
    assert_eq!(stored, user);
    let valid = w
        .accounts
        .sessions()
        .validate(created.token.expose())
        .await
        .expect("the new session validates");
    assert_eq!(valid.user.id, user.id);
    assert_eq!(created.session.ip.as_deref(), Some("203.0.113.7"));
    let credential = store.password_credential(user.id).await.unwrap().unwrap();
    assert!(
        credential.hash.expose().starts_with("$argon2id$"),
        "a hash, not the password"
    );

    let mails = w.mailer.take();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, user.email);
    let token = token_in(&mails[0], "/auth/verify-email");

    let verified = w
        .accounts
        .verify_email(&token, &client())
        .await
        .expect("verify");
    assert_eq!(verified.email_verified_at, Some(w.clock.now()));
    let valid = w
        .accounts
        .sessions()
        .validate(created.token.expose())
        .await
        .unwrap();
    assert!(
        valid.user.email_verified_at.is_some(),
        "cached sessions see the verified address at once"
    );
    assert_eq!(
        code_of(w.accounts.verify_email(&token, &client()).await),
        ErrorCode::InvalidLink,
        "a used link"
    );
    assert_eq!(
        code_of(w.accounts.verify_email("forged-token", &client()).await),
        ErrorCode::InvalidLink
    );
}

/// A verification link is dead after 24 hours.
pub async fn accounts_verification_link_expires_after_a_day(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    let (user, _) = sign_up(&w, "late@example.com").await;
    let token = token_in(&w.mailer.take()[0], "/auth/verify-email");
    w.clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert_eq!(
        code_of(w.accounts.verify_email(&token, &client()).await),
        ErrorCode::InvalidLink
    );
    let stored = store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.email_verified_at, None);
}

/// A taken email, in another case, is `email_taken`; the first account keeps its password.
pub async fn accounts_sign_up_with_taken_email_in_other_case_is_email_taken(
    store: Arc<dyn AuthStore>,
) {
    let w = world(&store);
    let (first, _) = sign_up(&w, "taken@example.com").await;
    let result = w
        .accounts
        .sign_up(
            "TAKEN@Example.COM",
            &secret("another strong passphrase"),
            None,
            &client(),
        )
        .await;
    assert_eq!(code_of(result), ErrorCode::EmailTaken);
    let signed_in = w
        .accounts
        .sign_in("taken@example.com", &secret(PASSWORD), &client())
        .await
        .expect("the first owner's password still works");
    assert_eq!(signed_in.user().id, first.id);
    assert!(
        sign_in(&w, "taken@example.com", "another strong passphrase")
            .await
            .is_err()
    );
}

/// Weak passwords (common, too short) and malformed emails create nothing.
pub async fn accounts_sign_up_with_weak_password_creates_no_user(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    for weak in ["password1234", "seven77", "weak@example.com"] {
        let result = w
            .accounts
            .sign_up("weak@example.com", &secret(weak), None, &client())
            .await;
        assert_eq!(code_of(result), ErrorCode::WeakPassword, "{weak:?}");
    }
    let result = w
        .accounts
        .sign_up("not-an-email", &secret(PASSWORD), None, &client())
        .await;
    assert_eq!(code_of(result), ErrorCode::InvalidRequest);
    let email = crate::fixtures::email("weak@example.com");
    assert!(store.user_by_email(&email).await.unwrap().is_none());
    assert!(w.mailer.messages().is_empty());
}

/// Wrong password, unknown email, malformed email and a user without a password all get the
/// very same error value: the answer does not tell which accounts exist.
pub async fn accounts_sign_in_failures_look_the_same_for_unknown_and_known_emails(
    store: Arc<dyn AuthStore>,
) {
    let w = world(&store);
    let (user, _) = sign_up(&w, "known@example.com").await;
    crate::cases::given_user(store.as_ref(), "nopassword@example.com").await;

    let wrong = sign_in(&w, "known@example.com", "wrong password here")
        .await
        .expect_err("wrong password");
    let unknown = sign_in(&w, "unknown@example.com", PASSWORD)
        .await
        .expect_err("unknown email");
    let no_password = sign_in(&w, "nopassword@example.com", PASSWORD)
        .await
        .expect_err("no password");
    let malformed = sign_in(&w, "no at sign", PASSWORD)
        .await
        .expect_err("malformed email");
    assert_eq!(wrong.code, ErrorCode::InvalidCredentials);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, no_password);
    assert_eq!(wrong, malformed);

    let signed_in = w
        .accounts
        .sign_in("KNOWN@example.com", &secret(PASSWORD), &client())
        .await
        .expect("the right password, email in another case");
    assert_eq!(signed_in.user().id, user.id);
}

/// Every sign-in makes a new session (id and token); none is reused.
pub async fn accounts_each_sign_in_makes_a_new_session(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    let (_, at_sign_up) = sign_up(&w, "fresh@example.com").await;
    let first = sign_in(&w, "fresh@example.com", PASSWORD).await.unwrap();
    let second = sign_in(&w, "fresh@example.com", PASSWORD).await.unwrap();
    let ids = [at_sign_up.session.id, first.session.id, second.session.id];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert_ne!(first.token.expose(), second.token.expose());
    for created in [&at_sign_up, &first, &second] {
        w.accounts
            .sessions()
            .validate(created.token.expose())
            .await
            .expect("each session stays valid");
    }
}

/// After 10 failed sign-ins for an email, the 11th is refused with a retry time even with
/// the right password; the limit frees up with time.
pub async fn accounts_sign_in_after_ten_failures_is_rate_limited_even_with_the_right_password(
    store: Arc<dyn AuthStore>,
) {
    let w = world(&store);
    sign_up(&w, "guessed@example.com").await;
    for i in 0..10 {
        let result = sign_in(&w, "guessed@example.com", &format!("guess number {i}")).await;
        assert_eq!(code_of(result), ErrorCode::InvalidCredentials, "guess {i}");
    }
    let refused = sign_in(&w, "Guessed@example.com", PASSWORD)
        .await
        .expect_err("rate limited");
    assert_eq!(refused.code, ErrorCode::RateLimited);
    assert!(refused.retry_after_secs.is_some_and(|s| s > 0));

    w.clock.advance(Duration::minutes(15));
    sign_in(&w, "guessed@example.com", PASSWORD)
        .await
        .expect("allowed again after the window");
}

/// A reset for an unknown email answers the same and sends nothing.
pub async fn accounts_password_reset_for_unknown_email_sends_nothing(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    w.accounts
        .request_password_reset("nobody@example.com", &client())
        .await;
    w.accounts
        .request_password_reset("not an email", &client())
        .await;
    assert!(w.mailer.messages().is_empty());
}

/// A reset link sets the password once and ends every session of the user.
pub async fn accounts_password_reset_sets_the_password_and_ends_every_session(
    store: Arc<dyn AuthStore>,
) {
    let w = world(&store);
    let (user, at_sign_up) = sign_up(&w, "reset@example.com").await;
    let other = sign_in(&w, "reset@example.com", PASSWORD).await.unwrap();
    assert_eq!(w.mailer.take().len(), 1, "the verification mail");

    w.accounts
        .request_password_reset("RESET@example.com", &client())
        .await;
    let mails = w.mailer.take();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, user.email);
    let token = token_in(&mails[0], "/reset-password");

    assert_eq!(
        code_of(
            w.accounts
                .confirm_password_reset(&token, &secret("password1234"), &client())
                .await
        ),
        ErrorCode::WeakPassword
    );
    // The weak attempt spent the link; a new one voids nothing else and works.
    w.accounts
        .request_password_reset("reset@example.com", &client())
        .await;
    let token = token_in(&w.mailer.take()[0], "/reset-password");
    w.accounts
        .confirm_password_reset(&token, &secret("a brand new passphrase"), &client())
        .await
        .expect("confirm");

    for old in [&at_sign_up, &other] {
        assert_eq!(
            code_of(w.accounts.sessions().validate(old.token.expose()).await),
            ErrorCode::Unauthenticated,
            "a session from before the reset"
        );
    }
    assert!(
        store
            .sessions_for_user(user.id, w.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code_of(sign_in(&w, "reset@example.com", PASSWORD).await),
        ErrorCode::InvalidCredentials
    );
    sign_in(&w, "reset@example.com", "a brand new passphrase")
        .await
        .expect("the new password");
    assert_eq!(
        code_of(
            w.accounts
                .confirm_password_reset(&token, &secret("yet another passphrase"), &client())
                .await
        ),
        ErrorCode::InvalidLink,
        "a used link"
    );
}

/// A reset link is dead after an hour, and a newer link voids an older one.
pub async fn accounts_password_reset_link_expires_and_is_voided_by_a_newer_one(
    store: Arc<dyn AuthStore>,
) {
    let w = world(&store);
    sign_up(&w, "expiry@example.com").await;
    assert_eq!(w.mailer.take().len(), 1, "the verification mail");

    w.accounts
        .request_password_reset("expiry@example.com", &client())
        .await;
    let old = token_in(&w.mailer.take()[0], "/reset-password");
    w.accounts
        .request_password_reset("expiry@example.com", &client())
        .await;
    let newer = token_in(&w.mailer.take()[0], "/reset-password");
    assert_eq!(
        code_of(
            w.accounts
                .confirm_password_reset(&old, &secret("a brand new passphrase"), &client())
                .await
        ),
        ErrorCode::InvalidLink,
        "voided by the newer link"
    );

    w.clock.advance(Duration::minutes(61));
    assert_eq!(
        code_of(
            w.accounts
                .confirm_password_reset(&newer, &secret("a brand new passphrase"), &client())
                .await
        ),
        ErrorCode::InvalidLink,
        "expired"
    );
    sign_in(&w, "expiry@example.com", PASSWORD)
        .await
        .expect("the password is unchanged");
}

/// Past 5 reset mails an hour for an account, no more are sent; the answer is the same.
pub async fn accounts_reset_mails_stop_past_the_account_limit(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    sign_up(&w, "flood@example.com").await; // one verification mail: 1 of 5
    assert_eq!(w.mailer.take().len(), 1, "the verification mail");
    for _ in 0..6 {
        w.accounts
            .request_password_reset("flood@example.com", &client())
            .await;
    }
    assert_eq!(w.mailer.take().len(), 4);
    w.clock.advance(Duration::hours(1));
    w.accounts
        .request_password_reset("flood@example.com", &client())
        .await;
    assert_eq!(w.mailer.take().len(), 1, "the limit frees up with time");
}

/// A change of password ends the user's other sessions and keeps the current one; it needs
/// the current password, and a user without one is told to reset.
pub async fn accounts_change_password_ends_other_sessions_and_keeps_the_current(
    store: Arc<dyn AuthStore>,
) {
    let w = world(&store);
    let (user, current) = sign_up(&w, "change@example.com").await;
    let other = sign_in(&w, "change@example.com", PASSWORD).await.unwrap();

    let wrong = w
        .accounts
        .change_password(
            user.id,
            current.session.id,
            &secret("not the password"),
            &secret("a brand new passphrase"),
            &client(),
        )
        .await;
    assert_eq!(code_of(wrong), ErrorCode::InvalidCredentials);
    let weak = w
        .accounts
        .change_password(
            user.id,
            current.session.id,
            &secret(PASSWORD),
            &secret("password1234"),
            &client(),
        )
        .await;
    assert_eq!(code_of(weak), ErrorCode::WeakPassword);
    w.accounts
        .sessions()
        .validate(other.token.expose())
        .await
        .expect("failed changes end nothing");

    w.accounts
        .change_password(
            user.id,
            current.session.id,
            &secret(PASSWORD),
            &secret("a brand new passphrase"),
            &client(),
        )
        .await
        .expect("change");
    w.accounts
        .sessions()
        .validate(current.token.expose())
        .await
        .expect("the current session stays");
    assert_eq!(
        code_of(w.accounts.sessions().validate(other.token.expose()).await),
        ErrorCode::Unauthenticated
    );
    sign_in(&w, "change@example.com", "a brand new passphrase")
        .await
        .expect("the new password");

    let provider_user = crate::cases::given_user(store.as_ref(), "oauth@example.com").await;
    let created = w
        .accounts
        .sessions()
        .create(provider_user.id, keystead::session::SessionMeta::default())
        .await
        .unwrap();
    let result = w
        .accounts
        .change_password(
            provider_user.id,
            created.session.id,
            &secret(""),
            &secret("a brand new passphrase"),
            &client(),
        )
        .await;
    assert_eq!(code_of(result), ErrorCode::InvalidRequest);
}

/// A hash of another kind (other argon2 costs) is replaced at sign-in by one of the
/// configured kind; the password keeps working.
pub async fn accounts_sign_in_upgrades_an_outdated_hash(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    let user = crate::cases::given_user(store.as_ref(), "legacy@example.com").await;
    let legacy = fast_hasher(16).hash(&secret(PASSWORD)).await.unwrap();
    store
        .set_password_hash(user.id, &legacy, w.clock.now())
        .await
        .unwrap();

    sign_in(&w, "legacy@example.com", PASSWORD)
        .await
        .expect("the legacy hash verifies");
    let upgraded = store.password_credential(user.id).await.unwrap().unwrap();
    assert_ne!(upgraded.hash, legacy, "the hash was replaced");
    assert!(
        upgraded.hash.expose().contains("m=8,t=1,p=1"),
        "the configured costs"
    );
    sign_in(&w, "legacy@example.com", PASSWORD)
        .await
        .expect("the upgraded hash verifies");
    let again = store.password_credential(user.id).await.unwrap().unwrap();
    assert_eq!(again.hash, upgraded.hash, "a current hash is kept");
}

/// Sign-in successes and failures are audited, with the client, without the password.
pub async fn accounts_sign_in_records_audit_events_without_the_password(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    let (user, _) = sign_up(&w, "audited@example.com").await;
    let wrong = "hunter2 wrong password";
    w.clock.advance(Duration::seconds(1));
    sign_in(&w, "audited@example.com", wrong)
        .await
        .expect_err("wrong password");
    w.clock.advance(Duration::seconds(1));
    sign_in(&w, "audited@example.com", PASSWORD).await.unwrap();

    let events = audit_events(&store, &user).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["sign_in.succeeded", "sign_in.failed", "sign_up"],
        "newest first"
    );
    for event in &events {
        assert_eq!(event.user_id, Some(user.id));
        assert_eq!(event.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(event.user_agent.as_deref(), Some("conformance/1.0"));
        let data = event.data.to_string();
        assert!(!data.contains(wrong) && !data.contains(PASSWORD), "{data}");
    }
    assert_eq!(events[1].actor_id, None, "a failure proves no identity");
}

/// Signing out kills the session server-side: the old token is refused; signing out
/// everywhere ends every session.
pub async fn accounts_sign_out_ends_the_session_for_good(store: Arc<dyn AuthStore>) {
    let w = world(&store);
    let (user, first) = sign_up(&w, "leaving@example.com").await;
    assert!(
        w.accounts
            .sign_out(first.session.id, &client())
            .await
            .unwrap()
    );
    assert_eq!(
        code_of(w.accounts.sessions().validate(first.token.expose()).await),
        ErrorCode::Unauthenticated,
        "a replayed cookie after sign-out"
    );
    assert!(
        !w.accounts
            .sign_out(first.session.id, &client())
            .await
            .unwrap()
    );

    let a = sign_in(&w, "leaving@example.com", PASSWORD).await.unwrap();
    let b = sign_in(&w, "leaving@example.com", PASSWORD).await.unwrap();
    assert_eq!(
        w.accounts
            .sign_out_everywhere(user.id, &client())
            .await
            .unwrap(),
        2
    );
    for created in [&a, &b] {
        assert_eq!(
            code_of(w.accounts.sessions().validate(created.token.expose()).await),
            ErrorCode::Unauthenticated
        );
    }
    let kinds: Vec<String> = audit_events(&store, &user)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"sign_out".to_owned()));
    assert!(kinds.contains(&"sign_out.everywhere".to_owned()));
}
