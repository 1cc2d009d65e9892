//! Hand-off from the old provider: for a transition window after a move off Clerk (or another
//! provider whose sessions are JWTs in a cookie), a request that carries only the old
//! provider's session token is swapped for one of our sessions on the spot, so that users
//! signed in there stay signed in.
//!
//! Off by default; [`AuthBuilder::session_handoff`](crate::AuthBuilder::session_handoff) turns
//! it on. A request with no credential of ours and the old cookie (`__session`, Clerk's, by
//! default), inside the window `[not_before, not_after)`:
//! 1. has its token verified: RS256 or ES256 only, the key chosen by `kid` from the JWKS given
//!    here (never fetched at request time), `iss` equal to the issuer, `exp` required (5 s
//!    leeway), `nbf` when present, `azp` one of the authorized parties when any are set, `sub`
//!    and `sid` present;
//! 2. is mapped to the user whose external id (`users.external_id`, written by `authctl`'s
//!    imports) is `sub`;
//! 3. claims the old session once ([`UserStore::claim_session_handoff`], keyed by the issuer
//!    and `sid`): a token whose session was already swapped (replayed, stolen, or a second
//!    request racing the first) is anonymous;
//! 4. gets a new session (refused for a disabled account), whose cookie goes out in
//!    [`Authentication::set_cookie`](crate::Authentication::set_cookie); the request is
//!    authenticated as that user, and the swap is audited as `session.handoff`.
//!
//! Anything that fails along the way leaves the request anonymous, as if the cookie were not
//! there. Outside the window the cookie is ignored entirely. A store that cannot answer fails
//! the request closed (`unavailable`), as for our own sessions.
//!
//! ```
//! use keystead::handoff::{JwkSet, SessionHandoff};
//! use time::macros::datetime;
//!
//! let jwks: JwkSet = serde_json::from_str(r#"{"keys": []}"#).unwrap();
//! let handoff = SessionHandoff::new(
//!     "https://clerk.example.com",
//!     jwks,
//!     vec!["https://app.example.com".to_owned()],
//!     datetime!(2026-09-01 00:00 UTC),
//! );
//! assert_eq!(handoff.cookie(), "__session");
//! ```
//!
//! [`UserStore::claim_session_handoff`]: crate::store::UserStore::claim_session_handoff

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

pub use jsonwebtoken::jwk::JwkSet;

/// The old provider's session cookie by default: Clerk's.
pub const DEFAULT_HANDOFF_COOKIE: &str = "__session";

/// Leeway for `exp` and `nbf`, in seconds: clocks of two services drift.
const LEEWAY_SECONDS: i64 = 5;

/// The old provider's issuer, its keys, and the window in which its sessions are swapped.
#[derive(Clone)]
pub struct SessionHandoff {
    issuer: String,
    keys: Vec<VerifyingKey>,
    authorized_parties: Vec<String>,
    cookie: String,
    not_before: Option<OffsetDateTime>,
    not_after: OffsetDateTime,
}

#[derive(Clone)]
struct VerifyingKey {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for SessionHandoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandoff")
            .field("issuer", &self.issuer)
            .field(
                "kids",
                &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            )
            .field("authorized_parties", &self.authorized_parties)
            .field("cookie", &self.cookie)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// The claims of the old provider's session token that the hand-off reads.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    sid: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    azp: Option<String>,
}

/// An old session that verified: whose it is, and which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OldSession {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) sid: String,
}

impl SessionHandoff {
    /// Swaps sessions of `issuer` (the `iss` its tokens carry, compared exactly) signed with a
    /// key of `jwks` until `not_after` (exclusive). `authorized_parties`: the origins allowed
    /// in `azp` (Clerk puts the frontend's origin there); empty accepts any. Keys that are not
    /// RSA or P-256 EC, have no `kid`, or are marked for another algorithm or use are
    /// ignored.
    #[must_use]
    pub fn new(
        issuer: &str,
        jwks: JwkSet,
        authorized_parties: Vec<String>,
        not_after: OffsetDateTime,
    ) -> Self {
        let keys = jwks
            .keys
            .into_iter()
            .filter_map(|jwk| verifying_key(&jwk))
            .collect();
        Self {
            issuer: issuer.to_owned(),
            keys,
            authorized_parties,
            cookie: DEFAULT_HANDOFF_COOKIE.to_owned(),
            not_before: None,
            not_after,
        }
    }

    /// The cookie that holds the old provider's session token (default `__session`).
    #[must_use]
    pub fn cookie_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.cookie);
        self
    }

    /// The start of the window (default: none, the window is open from the start).
    #[must_use]
    pub const fn not_before(mut self, at: OffsetDateTime) -> Self {
        self.not_before = Some(at);
        self
    }

    /// The cookie read.
    #[must_use]
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The issuer accepted.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The end of the window (exclusive).
    #[must_use]
    pub const fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// How many keys of the JWKS are usable (RS256 or ES256, with a `kid`).
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether `now` is inside `[not_before, not_after)`.
    #[must_use]
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        now < self.not_after && self.not_before.is_none_or(|start| start <= now)
    }

    /// The old session `token` proves at `now`, or `None` when it does not verify.
    pub(crate) fn verify(&self, token: &str, now: OffsetDateTime) -> Option<OldSession> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return None;
        }
        let kid = header.kid.as_deref()?;
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        if key.algorithm != header.alg {
            return None;
        }
        let mut validation = Validation::new(key.algorithm);
        validation.algorithms = vec![key.algorithm];
        // `exp` and `nbf` are compared with our clock below, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[self.issuer.as_str()]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .ok()?
            .claims;
        let now = now.unix_timestamp();
        if claims.iss != self.issuer
            || claims.exp.saturating_add(LEEWAY_SECONDS) <= now
            || claims
                .nbf
                .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECONDS))
            || claims.sub.is_empty()
            || claims.sid.is_empty()
        {
            return None;
        }
        if !self.authorized_parties.is_empty()
            && !claims
                .azp
                .as_ref()
                .is_some_and(|azp| self.authorized_parties.iter().any(|p| p == azp))
        {
            return None;
        }
        Some(OldSession {
            issuer: claims.iss,
            subject: claims.sub,
            sid: claims.sid,
        })
    }
}

/// The verifying key of a JWK, if it is one the hand-off accepts: RSA (RS256) or P-256 EC
/// (ES256), with a `kid`, not marked for encryption or another algorithm.
fn verifying_key(jwk: &jsonwebtoken::jwk::Jwk) -> Option<VerifyingKey> {
    let kid = jwk.common.key_id.clone()?;
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    ) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    match (jwk.common.key_algorithm, algorithm) {
        (None, _) | (Some(KeyAlgorithm::RS256), Algorithm::RS256) => {}
        (Some(KeyAlgorithm::ES256), Algorithm::ES256) => {}
        _ => return None,
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey {
        kid,
        algorithm,
        key,
    })
}
