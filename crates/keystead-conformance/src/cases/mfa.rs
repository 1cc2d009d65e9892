//! [`MfaStore`](keystead::store::MfaStore) and [`ChallengeStore`](keystead::store::ChallengeStore):
//! TOTP factors, recovery codes, passkeys, the short-lived challenges of multi-step flows,
//! and what an organization's MFA policy reads (`org_access`, `members().second_factor`).

use std::sync::Arc;

use keystead::id::PasskeyId;
use keystead::model::{ChallengeKind, MfaStatus, OrgAccess};
use keystead::{AuthStore, Clock, Conflict, ManualClock, Role, UserId};
use time::Duration;

use super::{assert_conflict, assert_not_found, given_member, given_org, given_user, race};
use crate::fixtures::{challenge, passkey, session, token_hash, totp_factor};

/// How many tasks race for one step, code or challenge.
const RACERS: usize = 16;

/// A TOTP time step (Unix time / 30 s) around now.
const STEP: i64 = 59_000_000;

/// Enrols and confirms a TOTP factor of `user_id` at `step`.
async fn given_confirmed_totp(store: &dyn AuthStore, user_id: UserId, clock: &ManualClock) {
    store
        .put_totp_factor(&totp_factor(user_id, clock.now()))
        .await
        .expect("put_totp_factor");
    assert!(
        store
            .confirm_totp_factor(user_id, STEP, clock.now())
            .await
            .expect("confirm_totp_factor"),
        "the unconfirmed factor is confirmed"
    );
}

/// An unconfirmed factor reads back as stored and is replaced by a new enrolment; the first
/// confirmation records its step and time, a second finds nothing to confirm. A user without
/// a factor has nothing to confirm either, and an unknown user cannot enrol.
pub async fn totp_factor_is_replaced_while_unconfirmed_and_confirmed_once(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "totp@example.com").await;
    assert_eq!(store.totp_factor(user.id).await.unwrap(), None);
    assert!(
        !store
            .confirm_totp_factor(user.id, STEP, clock.now())
            .await
            .unwrap(),
        "no factor: nothing to confirm"
    );

    let first = totp_factor(user.id, clock.now());
    store.put_totp_factor(&first).await.expect("put");
    assert_eq!(store.totp_factor(user.id).await.unwrap(), Some(first));

    clock.advance(Duration::minutes(2));
    let second = totp_factor(user.id, clock.now());
    store
        .put_totp_factor(&second)
        .await
        .expect("an unconfirmed factor is replaced");
    assert_eq!(
        store.totp_factor(user.id).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store.mfa_status(user.id).await.unwrap(),
        MfaStatus::default(),
        "an unconfirmed factor is no second factor"
    );

    clock.advance(Duration::seconds(30));
    let confirmed_at = clock.now();
    assert!(
        store
            .confirm_totp_factor(user.id, STEP, confirmed_at)
            .await
            .unwrap()
    );
    assert_eq!(
        store.totp_factor(user.id).await.unwrap(),
        Some(keystead::model::TotpFactor {
            confirmed_at: Some(confirmed_at),
            last_used_step: Some(STEP),
            ..second
        })
    );
    assert!(
        !store
            .confirm_totp_factor(user.id, STEP + 1, clock.now())
            .await
            .unwrap(),
        "a confirmed factor is not confirmed again"
    );
    let status = store.mfa_status(user.id).await.unwrap();
    assert!(status.totp && status.has_second_factor(), "{status:?}");

    assert_not_found(
        store
            .put_totp_factor(&totp_factor(UserId::new(), clock.now()))
            .await,
        "put_totp_factor for an unknown user",
    );
}

/// Enrolling over a confirmed factor is `Conflict::TotpFactor` and changes nothing; once it
/// is deleted, enrolment works again. Deleting reports whether there was a factor.
pub async fn totp_factor_over_a_confirmed_one_is_a_conflict(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "totp@example.com").await;
    given_confirmed_totp(&*store, user.id, &clock).await;
    let before = store.totp_factor(user.id).await.unwrap();

    assert_conflict(
        store
            .put_totp_factor(&totp_factor(user.id, clock.now()))
            .await,
        Conflict::TotpFactor,
        "put_totp_factor over a confirmed factor",
    );
    assert_eq!(
        store.totp_factor(user.id).await.unwrap(),
        before,
        "unchanged"
    );

    assert!(store.delete_totp_factor(user.id).await.unwrap());
    assert!(!store.delete_totp_factor(user.id).await.unwrap());
    assert_eq!(store.totp_factor(user.id).await.unwrap(), None);
    assert!(!store.mfa_status(user.id).await.unwrap().totp);
    let again = totp_factor(user.id, clock.now());
    store.put_totp_factor(&again).await.expect("enrol again");
    assert_eq!(store.totp_factor(user.id).await.unwrap(), Some(again));
}

/// A step is accepted once: the same step again, or an earlier one, is a replay; a later one
/// is accepted. An unconfirmed factor, no factor, or another user's factor accept nothing.
pub async fn use_totp_step_refuses_replays_and_earlier_steps(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "totp@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    assert!(
        !store.use_totp_step(user.id, STEP).await.unwrap(),
        "no factor"
    );
    store
        .put_totp_factor(&totp_factor(user.id, clock.now()))
        .await
        .unwrap();
    assert!(
        !store.use_totp_step(user.id, STEP).await.unwrap(),
        "an unconfirmed factor accepts no code"
    );
    store
        .confirm_totp_factor(user.id, STEP, clock.now())
        .await
        .unwrap();

    assert!(
        !store.use_totp_step(user.id, STEP).await.unwrap(),
        "the confirming code's step is used"
    );
    assert!(!store.use_totp_step(user.id, STEP - 1).await.unwrap());
    assert!(store.use_totp_step(user.id, STEP + 1).await.unwrap());
    assert!(
        !store.use_totp_step(user.id, STEP + 1).await.unwrap(),
        "replay"
    );
    assert!(
        !store.use_totp_step(other.id, STEP + 2).await.unwrap(),
        "another user has no factor"
    );
    assert!(store.use_totp_step(user.id, STEP + 3).await.unwrap());
    assert!(
        !store.use_totp_step(user.id, STEP + 2).await.unwrap(),
        "earlier than the last used step"
    );
    assert_eq!(
        store
            .totp_factor(user.id)
            .await
            .unwrap()
            .and_then(|f| f.last_used_step),
        Some(STEP + 3)
    );
}

/// Many sign-ins present a code of the same step at the same moment: exactly one is
/// accepted.
pub async fn concurrent_uses_of_one_totp_step_succeed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "totp@example.com").await;
    given_confirmed_totp(&*store, user.id, &clock).await;
    let results = race(RACERS, |_| {
        let store = Arc::clone(&store);
        async move { store.use_totp_step(user.id, STEP + 1).await }
    })
    .await;
    let accepted = results
        .iter()
        .map(|r| *r.as_ref().expect("use_totp_step"))
        .filter(|&ok| ok)
        .count();
    assert_eq!(accepted, 1, "{results:?}");
    assert_eq!(
        store
            .totp_factor(user.id)
            .await
            .unwrap()
            .and_then(|f| f.last_used_step),
        Some(STEP + 1)
    );
}

/// Many confirmations of one enrolment at once: exactly one confirms it.
pub async fn concurrent_confirmations_of_one_totp_factor_succeed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "totp@example.com").await;
    store
        .put_totp_factor(&totp_factor(user.id, clock.now()))
        .await
        .unwrap();
    let now = clock.now();
    let results = race(RACERS, |i| {
        let store = Arc::clone(&store);
        let step = STEP + i64::try_from(i).expect("a small number");
        async move { store.confirm_totp_factor(user.id, step, now).await }
    })
    .await;
    let confirmed = results
        .iter()
        .map(|r| *r.as_ref().expect("confirm_totp_factor"))
        .filter(|&ok| ok)
        .count();
    assert_eq!(confirmed, 1, "{results:?}");
}

/// A new set of recovery codes voids the old set; each code is used once, only by its user;
/// `mfa_status` counts the unused ones; deleting them reports how many there were. An
/// unknown user gets no codes.
pub async fn recovery_codes_are_replaced_as_a_set_and_used_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "codes@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    let old: Vec<_> = (0..10).map(|_| token_hash()).collect();
    store
        .replace_recovery_codes(user.id, &old, clock.now())
        .await
        .expect("replace");
    assert_eq!(store.mfa_status(user.id).await.unwrap().recovery_codes, 10);
    assert!(
        !store.mfa_status(user.id).await.unwrap().has_second_factor(),
        "recovery codes alone are no second factor"
    );
    assert!(
        store
            .use_recovery_code(user.id, &old[0], clock.now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(user.id, &old[0], clock.now())
            .await
            .unwrap(),
        "used once"
    );
    assert!(
        !store
            .use_recovery_code(other.id, &old[1], clock.now())
            .await
            .unwrap(),
        "another user's code"
    );
    assert!(
        !store
            .use_recovery_code(user.id, &token_hash(), clock.now())
            .await
            .unwrap(),
        "an unknown code"
    );
    assert_eq!(store.mfa_status(user.id).await.unwrap().recovery_codes, 9);

    clock.advance(Duration::days(1));
    let new: Vec<_> = (0..10).map(|_| token_hash()).collect();
    store
        .replace_recovery_codes(user.id, &new, clock.now())
        .await
        .expect("replace");
    assert_eq!(store.mfa_status(user.id).await.unwrap().recovery_codes, 10);
    assert!(
        !store
            .use_recovery_code(user.id, &old[1], clock.now())
            .await
            .unwrap(),
        "the old set is void"
    );
    assert!(
        store
            .use_recovery_code(user.id, &new[9], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(store.mfa_status(user.id).await.unwrap().recovery_codes, 9);

    assert_eq!(store.delete_recovery_codes(user.id).await.unwrap(), 10);
    assert_eq!(store.delete_recovery_codes(user.id).await.unwrap(), 0);
    assert_eq!(store.mfa_status(user.id).await.unwrap().recovery_codes, 0);
    assert!(
        !store
            .use_recovery_code(user.id, &new[0], clock.now())
            .await
            .unwrap()
    );

    assert_not_found(
        store
            .replace_recovery_codes(UserId::new(), &[token_hash()], clock.now())
            .await,
        "replace_recovery_codes for an unknown user",
    );
    assert_not_found(
        store
            .replace_recovery_codes(UserId::new(), &[], clock.now())
            .await,
        "replace_recovery_codes (no codes) for an unknown user",
    );
}

/// One recovery code presented by many requests at once: exactly one uses it.
pub async fn concurrent_uses_of_one_recovery_code_succeed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "codes@example.com").await;
    let codes: Vec<_> = (0..10).map(|_| token_hash()).collect();
    store
        .replace_recovery_codes(user.id, &codes, clock.now())
        .await
        .unwrap();
    let now = clock.now();
    let code = codes[3];
    let results = race(RACERS, |_| {
        let store = Arc::clone(&store);
        async move { store.use_recovery_code(user.id, &code, now).await }
    })
    .await;
    let used = results
        .iter()
        .map(|r| *r.as_ref().expect("use_recovery_code"))
        .filter(|&ok| ok)
        .count();
    assert_eq!(used, 1, "{results:?}");
    assert_eq!(store.mfa_status(user.id).await.unwrap().recovery_codes, 9);
}

/// Passkeys read back with every field, oldest first, by user and by credential id; a
/// credential id registered already (by anyone) is `Conflict::Passkey`; an unknown user is
/// not found.
pub async fn passkeys_round_trip_and_a_registered_credential_id_conflicts(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "keys@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    let first = passkey(user.id, "MacBook Touch ID", clock.now());
    let mut second = passkey(
        user.id,
        "YubiKey 5C — “blue”",
        clock.now() + Duration::hours(1),
    );
    second.backup_eligible = false;
    second.last_used_at = Some(clock.now() + Duration::hours(2));
    // Written newest first: the list must be ordered by the store.
    store.create_passkey(&second).await.expect("create");
    store.create_passkey(&first).await.expect("create");

    assert_eq!(
        store.passkeys_for_user(user.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store
            .passkey_by_credential_id(&second.credential_id)
            .await
            .unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store.passkey_by_credential_id(&[1, 2, 3]).await.unwrap(),
        None
    );
    assert_eq!(store.passkeys_for_user(other.id).await.unwrap(), vec![]);
    let status = store.mfa_status(user.id).await.unwrap();
    assert_eq!((status.totp, status.passkeys), (false, 2));
    assert!(status.has_second_factor());

    let mut stolen = passkey(other.id, "copy", clock.now());
    stolen.credential_id.clone_from(&first.credential_id);
    assert_conflict(
        store.create_passkey(&stolen).await,
        Conflict::Passkey,
        "another user registering a registered credential id",
    );
    assert_eq!(store.passkeys_for_user(other.id).await.unwrap(), vec![]);
    assert_not_found(
        store
            .create_passkey(&passkey(UserId::new(), "ghost", clock.now()))
            .await,
        "create_passkey for an unknown user",
    );
}

/// A passkey is renamed and deleted only through its own user (another user's id is
/// refused and changes nothing); a use records the credential's new state, backup state and
/// time; a use of an unknown passkey is not found.
pub async fn passkeys_are_renamed_and_deleted_only_by_their_user(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "keys@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    let key = passkey(user.id, "Laptop", clock.now());
    store.create_passkey(&key).await.unwrap();

    assert!(
        !store
            .rename_passkey(other.id, key.id, "mine now")
            .await
            .unwrap(),
        "another user cannot rename it"
    );
    assert!(
        !store.delete_passkey(other.id, key.id).await.unwrap(),
        "another user cannot delete it"
    );
    assert!(
        !store
            .rename_passkey(user.id, PasskeyId::new(), "x")
            .await
            .unwrap()
    );
    assert!(
        store
            .rename_passkey(user.id, key.id, "Work laptop")
            .await
            .unwrap()
    );

    clock.advance(Duration::minutes(10));
    let credential = r#"{"cred":"updated","counter":7}"#;
    store
        .record_passkey_use(key.id, credential, true, clock.now())
        .await
        .expect("record_passkey_use");
    let expected = keystead::model::Passkey {
        name: "Work laptop".to_owned(),
        credential: credential.to_owned(),
        backup_state: true,
        last_used_at: Some(clock.now()),
        ..key.clone()
    };
    assert_eq!(
        store.passkeys_for_user(user.id).await.unwrap(),
        vec![expected]
    );
    assert_not_found(
        store
            .record_passkey_use(PasskeyId::new(), credential, false, clock.now())
            .await,
        "record_passkey_use of an unknown passkey",
    );

    assert!(store.delete_passkey(user.id, key.id).await.unwrap());
    assert!(!store.delete_passkey(user.id, key.id).await.unwrap());
    assert_eq!(store.passkeys_for_user(user.id).await.unwrap(), vec![]);
    assert_eq!(
        store
            .passkey_by_credential_id(&key.credential_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.mfa_status(user.id).await.unwrap().passkeys, 0);
}

/// A challenge reads back with every field, found only by its kind and hash; peeking leaves
/// it in place, taking removes it (a second take gets nothing). A duplicate hash is
/// `Conflict::Token`; an unknown user is not found.
pub async fn challenge_round_trips_and_is_taken_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "flow@example.com").await;
    let pending = challenge(ChallengeKind::MfaSignIn, Some(user.id), clock.now());
    let mut ceremony = challenge(ChallengeKind::PasskeyAuthentication, None, clock.now());
    ceremony.data = r#"{"state":"ünïcode \"quoted\""}"#.to_owned();
    store.create_challenge(&pending).await.expect("create");
    store.create_challenge(&ceremony).await.expect("create");

    clock.advance(Duration::minutes(4));
    let now = clock.now();
    assert_eq!(
        store
            .challenge(ChallengeKind::MfaSignIn, &pending.token_hash, now)
            .await
            .unwrap(),
        Some(pending.clone())
    );
    assert_eq!(
        store
            .challenge(ChallengeKind::MfaSignIn, &pending.token_hash, now)
            .await
            .unwrap(),
        Some(pending.clone()),
        "peeking leaves it in place"
    );
    assert_eq!(
        store
            .take_challenge(ChallengeKind::PasskeyRegistration, &pending.token_hash, now)
            .await
            .unwrap(),
        None,
        "another kind"
    );
    assert_eq!(
        store
            .take_challenge(ChallengeKind::MfaSignIn, &token_hash(), now)
            .await
            .unwrap(),
        None,
        "an unknown hash"
    );
    assert_eq!(
        store
            .take_challenge(ChallengeKind::MfaSignIn, &pending.token_hash, now)
            .await
            .unwrap(),
        Some(pending.clone())
    );
    assert_eq!(
        store
            .take_challenge(ChallengeKind::MfaSignIn, &pending.token_hash, now)
            .await
            .unwrap(),
        None,
        "taken once"
    );
    assert_eq!(
        store
            .challenge(ChallengeKind::MfaSignIn, &pending.token_hash, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_challenge(
                ChallengeKind::PasskeyAuthentication,
                &ceremony.token_hash,
                now
            )
            .await
            .unwrap(),
        Some(ceremony.clone()),
        "the other challenge is untouched"
    );

    let first = challenge(ChallengeKind::PasskeyRegistration, Some(user.id), now);
    store.create_challenge(&first).await.unwrap();
    let mut duplicate = challenge(ChallengeKind::MfaSignIn, None, now);
    duplicate.token_hash = first.token_hash;
    assert_conflict(
        store.create_challenge(&duplicate).await,
        Conflict::Token,
        "a challenge with a taken hash",
    );
    assert_not_found(
        store
            .create_challenge(&challenge(
                ChallengeKind::MfaSignIn,
                Some(UserId::new()),
                now,
            ))
            .await,
        "a challenge of an unknown user",
    );
}

/// A challenge is neither shown nor taken at or after its expiry; `delete_expired_challenges`
/// deletes exactly the expired ones (at that very instant included) and counts them.
pub async fn expired_challenges_are_not_given_out_and_are_deleted(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let start = clock.now();
    let old = challenge(ChallengeKind::MfaSignIn, None, start);
    let older = challenge(
        ChallengeKind::PasskeyAuthentication,
        None,
        start - Duration::minutes(1),
    );
    let live = challenge(ChallengeKind::MfaSignIn, None, start + Duration::minutes(3));
    for c in [&old, &older, &live] {
        store.create_challenge(c).await.unwrap();
    }
    let at = old.expires_at;
    assert_eq!(
        store
            .challenge(ChallengeKind::MfaSignIn, &old.token_hash, at)
            .await
            .unwrap(),
        None,
        "expired exactly at expires_at"
    );
    assert_eq!(
        store
            .take_challenge(ChallengeKind::MfaSignIn, &old.token_hash, at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .challenge(
                ChallengeKind::MfaSignIn,
                &old.token_hash,
                at - Duration::microseconds(1)
            )
            .await
            .unwrap(),
        Some(old.clone()),
        "live until then"
    );

    assert_eq!(store.delete_expired_challenges(at).await.unwrap(), 2);
    assert_eq!(store.delete_expired_challenges(at).await.unwrap(), 0);
    assert_eq!(
        store
            .challenge(ChallengeKind::MfaSignIn, &old.token_hash, start)
            .await
            .unwrap(),
        None,
        "deleted"
    );
    assert_eq!(
        store
            .take_challenge(ChallengeKind::MfaSignIn, &live.token_hash, at)
            .await
            .unwrap(),
        Some(live)
    );
}

/// One pending sign-in completed by many requests at once: exactly one takes it.
pub async fn concurrent_takes_of_one_challenge_succeed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "flow@example.com").await;
    let pending = challenge(ChallengeKind::MfaSignIn, Some(user.id), clock.now());
    store.create_challenge(&pending).await.unwrap();
    let now = clock.now();
    let hash = pending.token_hash;
    let results = race(RACERS, |_| {
        let store = Arc::clone(&store);
        async move {
            store
                .take_challenge(ChallengeKind::MfaSignIn, &hash, now)
                .await
        }
    })
    .await;
    let taken: Vec<_> = results
        .into_iter()
        .filter_map(|r| r.expect("take_challenge"))
        .collect();
    assert_eq!(taken, vec![pending]);
}

/// `org_access` gives the membership, the organization's policy and whether the member has
/// a second factor: an unconfirmed TOTP is none, a confirmed one or a passkey is one.
/// `members` tells the same per member. A non-member has no access.
pub async fn org_access_and_members_reflect_second_factors(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let t = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let with_totp = given_user(&*store, "totp@example.com").await;
    let with_key = given_user(&*store, "key@example.com").await;
    let outsider = given_user(&*store, "outsider@example.com").await;
    let org = given_org(&*store, "acme", owner.id, t).await;
    let m_totp = given_member(
        &*store,
        org.id,
        with_totp.id,
        Role::MEMBER,
        t + Duration::hours(1),
    )
    .await;
    let m_key = given_member(
        &*store,
        org.id,
        with_key.id,
        Role::ADMIN,
        t + Duration::hours(2),
    )
    .await;

    let second_factors = |members: Vec<keystead::Member>| {
        members
            .into_iter()
            .map(|m| (m.user.id, m.second_factor))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        second_factors(store.members(org.id).await.unwrap()),
        vec![
            (owner.id, false),
            (with_totp.id, false),
            (with_key.id, false)
        ]
    );
    assert_eq!(
        store.org_access(org.id, with_totp.id).await.unwrap(),
        Some(OrgAccess {
            membership: m_totp.clone(),
            mfa_required: false,
            second_factor: false,
        })
    );

    store
        .put_totp_factor(&totp_factor(with_totp.id, t))
        .await
        .unwrap();
    assert_eq!(
        store
            .org_access(org.id, with_totp.id)
            .await
            .unwrap()
            .map(|a| a.second_factor),
        Some(false),
        "an unconfirmed TOTP is no second factor"
    );
    store
        .confirm_totp_factor(with_totp.id, STEP, t)
        .await
        .unwrap();
    store
        .create_passkey(&passkey(with_key.id, "Phone", t))
        .await
        .unwrap();
    // Recovery codes alone are no second factor.
    store
        .replace_recovery_codes(owner.id, &[token_hash()], t)
        .await
        .unwrap();

    assert_eq!(
        store.org_access(org.id, with_totp.id).await.unwrap(),
        Some(OrgAccess {
            membership: m_totp,
            mfa_required: false,
            second_factor: true,
        })
    );
    assert_eq!(
        store.org_access(org.id, with_key.id).await.unwrap(),
        Some(OrgAccess {
            membership: m_key,
            mfa_required: false,
            second_factor: true,
        })
    );
    assert_eq!(
        store
            .org_access(org.id, owner.id)
            .await
            .unwrap()
            .map(|a| (a.membership.role, a.second_factor)),
        Some((Role::OWNER, false))
    );
    assert_eq!(
        second_factors(store.members(org.id).await.unwrap()),
        vec![(owner.id, false), (with_totp.id, true), (with_key.id, true)]
    );
    assert_eq!(store.org_access(org.id, outsider.id).await.unwrap(), None);
    assert_eq!(
        store
            .org_access(keystead::OrgId::new(), owner.id)
            .await
            .unwrap(),
        None
    );

    store.delete_totp_factor(with_totp.id).await.unwrap();
    assert_eq!(
        store
            .org_access(org.id, with_totp.id)
            .await
            .unwrap()
            .map(|a| a.second_factor),
        Some(false),
        "the factor is gone"
    );
}

/// `set_org_mfa_required` sets and clears the policy, as `organization` and `org_access`
/// then read it; an unknown organization is not found.
pub async fn set_org_mfa_required_sets_and_clears_the_policy(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", owner.id, clock.now()).await;
    let other = given_org(&*store, "other", owner.id, clock.now()).await;
    assert!(!org.mfa_required);

    let updated = store.set_org_mfa_required(org.id, true).await.unwrap();
    assert_eq!(
        updated,
        keystead::Organization {
            mfa_required: true,
            ..org.clone()
        }
    );
    assert_eq!(store.organization(org.id).await.unwrap(), Some(updated));
    assert_eq!(
        store
            .org_access(org.id, owner.id)
            .await
            .unwrap()
            .map(|a| a.mfa_required),
        Some(true)
    );
    assert_eq!(
        store.organization(other.id).await.unwrap(),
        Some(other.clone()),
        "another organization keeps its policy"
    );
    let listed = store.organizations_for_user(owner.id).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|o| (o.organization.id, o.organization.mfa_required))
            .collect::<Vec<_>>(),
        vec![(org.id, true), (other.id, false)]
    );

    let cleared = store.set_org_mfa_required(org.id, false).await.unwrap();
    assert_eq!(cleared, org);
    assert_not_found(
        store
            .set_org_mfa_required(keystead::OrgId::new(), true)
            .await,
        "set_org_mfa_required of an unknown organization",
    );
}

/// `set_session_authenticated_at` records a re-authentication on that session only, and
/// reports whether the session exists.
pub async fn set_session_authenticated_at_records_a_reauthentication(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "sess@example.com").await;
    let mine = session(user.id, clock.now());
    let other = session(user.id, clock.now());
    store.create_session(&mine).await.unwrap();
    store.create_session(&other).await.unwrap();

    clock.advance(Duration::minutes(42));
    assert!(
        store
            .set_session_authenticated_at(mine.id, clock.now())
            .await
            .unwrap()
    );
    assert_eq!(
        store.session_by_id(mine.id).await.unwrap(),
        Some(keystead::Session {
            authenticated_at: clock.now(),
            ..mine
        })
    );
    assert_eq!(
        store.session_by_id(other.id).await.unwrap(),
        Some(other),
        "other sessions keep theirs"
    );
    assert!(
        !store
            .set_session_authenticated_at(keystead::SessionId::new(), clock.now())
            .await
            .unwrap()
    );
}

/// Deleting a user deletes their TOTP factor, recovery codes, passkeys and challenges, and
/// nobody else's.
pub async fn delete_user_removes_their_second_factors_and_challenges(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let leaver = given_user(&*store, "leaver@example.com").await;
    let stayer = given_user(&*store, "stayer@example.com").await;
    let mut keys = Vec::new();
    let mut challenges = Vec::new();
    for user in [&leaver, &stayer] {
        given_confirmed_totp(&*store, user.id, &clock).await;
        store
            .replace_recovery_codes(user.id, &[token_hash(), token_hash()], now)
            .await
            .unwrap();
        let key = passkey(user.id, "Phone", now);
        store.create_passkey(&key).await.unwrap();
        keys.push(key);
        let c = challenge(ChallengeKind::PasskeyRegistration, Some(user.id), now);
        store.create_challenge(&c).await.unwrap();
        challenges.push(c);
    }
    let anonymous = challenge(ChallengeKind::PasskeyAuthentication, None, now);
    store.create_challenge(&anonymous).await.unwrap();

    store.delete_user(leaver.id).await.expect("delete_user");

    assert_eq!(store.totp_factor(leaver.id).await.unwrap(), None);
    assert_eq!(
        store.mfa_status(leaver.id).await.unwrap(),
        MfaStatus::default()
    );
    assert_eq!(
        store
            .passkey_by_credential_id(&keys[0].credential_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .challenge(
                ChallengeKind::PasskeyRegistration,
                &challenges[0].token_hash,
                now
            )
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        store.mfa_status(stayer.id).await.unwrap(),
        MfaStatus {
            totp: true,
            passkeys: 1,
            recovery_codes: 2,
        }
    );
    assert_eq!(
        store
            .passkey_by_credential_id(&keys[1].credential_id)
            .await
            .unwrap(),
        Some(keys[1].clone())
    );
    assert_eq!(
        store
            .challenge(
                ChallengeKind::PasskeyRegistration,
                &challenges[1].token_hash,
                now
            )
            .await
            .unwrap(),
        Some(challenges[1].clone())
    );
    assert_eq!(
        store
            .challenge(
                ChallengeKind::PasskeyAuthentication,
                &anonymous.token_hash,
                now
            )
            .await
            .unwrap(),
        Some(anonymous)
    );
}
