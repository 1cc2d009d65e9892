//! Checks the suite itself, against a plain in-memory store written from the trait docs.
//!
//! - The whole suite runs against `MemoryStore`: a case that fails here is a bug in the case
//!   (or a disagreement with the docs to settle), not in a database store.
//! - The race cases run against `MemoryStore::racy()`, which checks its invariants, sleeps,
//!   then writes, as a store without proper locking would: each race case must fail on it,
//!   so the races have teeth.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use keystead::id::{ChallengeId, PasskeyId};
use keystead::model::{Challenge, ChallengeKind, MfaStatus, OrgAccess, Passkey, TotpFactor};
use keystead::store::{ChallengeStore, MfaStore};
use keystead::{
    ApiTokenId, ApiTokenRecord, ApiTokenStore, AuditEvent, AuditQuery, AuditStore, AuthStore,
    ChangeLogStore, Conflict, Email, ExternalAccount, ExternalAccountId, ExternalAccountStore,
    Invitation, InvitationId, InvitationStore, LoggedChange, Member, Membership, NewUser,
    OAuthFlow, OAuthFlowStore, OneTimeToken, OneTimeTokenId, OneTimeTokenStore, OrgId,
    Organization, OrganizationStore, PasswordCredential, RateDecision, RateLimit, RateLimitStore,
    Role, SecretString, Session, SessionId, SessionStore, StoreError, StoreResult, TokenHash,
    TokenPurpose, User, UserId, UserOrganization, UserStore,
};
use keystead_conformance::{Harness, cases, conformance_suite};
use time::OffsetDateTime;

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<UserId, User>,
    passwords: BTreeMap<UserId, PasswordCredential>,
    external: BTreeMap<ExternalAccountId, ExternalAccount>,
    sessions: BTreeMap<SessionId, Session>,
    orgs: BTreeMap<OrgId, Organization>,
    members: BTreeMap<(OrgId, UserId), Membership>,
    invitations: BTreeMap<InvitationId, Invitation>,
    tokens: BTreeMap<OneTimeTokenId, OneTimeToken>,
    api_tokens: BTreeMap<ApiTokenId, ApiTokenRecord>,
    audit: Vec<AuditEvent>,
    rate_limits: BTreeMap<[u8; 32], OffsetDateTime>,
    oauth_flows: BTreeMap<[u8; 32], OAuthFlow>,
    change_version: i64,
    change_log: BTreeMap<i64, LoggedChange>,
    handoffs: BTreeMap<[u8; 32], UserId>,
    totp: BTreeMap<UserId, TotpFactor>,
    /// Recovery codes by (user, hash): (created_at, used_at).
    recovery_codes: BTreeMap<(UserId, [u8; 32]), (OffsetDateTime, Option<OffsetDateTime>)>,
    passkeys: BTreeMap<PasskeyId, Passkey>,
    challenges: BTreeMap<ChallengeId, Challenge>,
}

impl State {
    /// Whether the user has a confirmed TOTP factor or a passkey.
    fn has_second_factor(&self, user_id: UserId) -> bool {
        self.totp
            .get(&user_id)
            .is_some_and(|f| f.confirmed_at.is_some())
            || self.passkeys.values().any(|p| p.user_id == user_id)
    }

    /// The live challenge of this kind and hash.
    fn live_challenge(
        &self,
        kind: ChallengeKind,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Option<&Challenge> {
        self.challenges
            .values()
            .find(|c| c.kind == kind && c.token_hash == *hash && now < c.expires_at)
    }

    fn owner_count(&self, org_id: OrgId) -> usize {
        self.members
            .values()
            .filter(|m| m.org_id == org_id && m.role.is_owner())
            .count()
    }

    fn is_last_owner(&self, org_id: OrgId, user_id: UserId) -> bool {
        self.members
            .get(&(org_id, user_id))
            .is_some_and(|m| m.role.is_owner())
            && self.owner_count(org_id) == 1
    }

    fn member(&self, org_id: OrgId, user_id: UserId) -> StoreResult<&Membership> {
        self.members
            .get(&(org_id, user_id))
            .ok_or(StoreError::NotFound)
    }

    fn pending_invitation(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<&Invitation> {
        self.invitations
            .values()
            .find(|i| i.token_hash == *hash && i.is_pending(now))
            .ok_or(StoreError::NotFound)
    }

    fn usable_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Option<OneTimeTokenId> {
        self.tokens
            .values()
            .find(|t| {
                t.purpose == purpose
                    && t.token_hash == *hash
                    && t.used_at.is_none()
                    && now < t.expires_at
            })
            .map(|t| t.id)
    }
}

#[derive(Debug, Default)]
struct MemoryStore {
    state: Mutex<State>,
    /// Check, sleep, then write: the race a store without locking has.
    racy: bool,
}

impl MemoryStore {
    fn racy() -> Self {
        Self {
            racy: true,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `check` then `act`; atomically, unless the store is racy.
    async fn guarded<T>(
        &self,
        check: impl FnOnce(&State) -> StoreResult<()>,
        act: impl FnOnce(&mut State) -> StoreResult<T>,
    ) -> StoreResult<T> {
        if self.racy {
            check(&self.lock())?;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            act(&mut self.lock())
        } else {
            let mut state = self.lock();
            check(&state)?;
            act(&mut state)
        }
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, new: &NewUser) -> StoreResult<User> {
        self.import_user(new, &[]).await
    }

    async fn import_user(&self, new: &NewUser, links: &[ExternalAccount]) -> StoreResult<User> {
        let user = new.user.clone();
        self.guarded(
            |s| {
                if s.users.contains_key(&user.id) {
                    Err(StoreError::Conflict(Conflict::UserId))
                } else if s.users.values().any(|u| u.email == user.email) {
                    Err(StoreError::Conflict(Conflict::Email))
                } else if user.external_id.is_some()
                    && s.users.values().any(|u| u.external_id == user.external_id)
                {
                    Err(StoreError::Conflict(Conflict::UserExternalId))
                } else if links.iter().enumerate().any(|(i, l)| {
                    s.external
                        .values()
                        .any(|a| a.issuer == l.issuer && a.subject == l.subject)
                        || links[..i]
                            .iter()
                            .any(|o| o.issuer == l.issuer && o.subject == l.subject)
                }) {
                    Err(StoreError::Conflict(Conflict::ExternalAccount))
                } else if links
                    .iter()
                    .enumerate()
                    .any(|(i, l)| links[..i].iter().any(|o| o.provider == l.provider))
                {
                    Err(StoreError::Conflict(Conflict::ProviderLinked))
                } else if links.iter().any(|l| l.user_id != user.id) {
                    Err(StoreError::corrupt("an imported link names another user"))
                } else {
                    Ok(())
                }
            },
            |s| {
                for link in links {
                    s.external.insert(link.id, link.clone());
                }
                if let Some(hash) = &new.password_hash {
                    s.passwords.insert(
                        user.id,
                        PasswordCredential {
                            user_id: user.id,
                            hash: hash.clone(),
                            updated_at: user.created_at,
                        },
                    );
                }
                s.users.insert(user.id, user.clone());
                Ok(user.clone())
            },
        )
        .await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.email == *email)
            .cloned())
    }

    async fn user_by_external_id(&self, external_id: &str) -> StoreResult<Option<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.external_id.as_deref() == Some(external_id))
            .cloned())
    }

    async fn set_user_external_id(
        &self,
        id: UserId,
        external_id: Option<&str>,
    ) -> StoreResult<User> {
        let mut s = self.lock();
        if external_id.is_some()
            && s.users
                .values()
                .any(|u| u.id != id && u.external_id.as_deref() == external_id)
        {
            return Err(StoreError::Conflict(Conflict::UserExternalId));
        }
        let user = s.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        user.external_id = external_id.map(str::to_owned);
        Ok(user.clone())
    }

    async fn set_user_disabled(&self, id: UserId, at: Option<OffsetDateTime>) -> StoreResult<User> {
        let mut s = self.lock();
        let user = s.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        match at {
            Some(at) => {
                user.disabled_at.get_or_insert(at);
            }
            None => user.disabled_at = None,
        }
        Ok(user.clone())
    }

    async fn claim_session_handoff(
        &self,
        key: &TokenHash,
        user_id: UserId,
        _at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let claimed = self
            .guarded(
                |s| {
                    if !s.users.contains_key(&user_id) {
                        Err(StoreError::NotFound)
                    } else if s.handoffs.contains_key(key.as_bytes()) {
                        Err(StoreError::Conflict(Conflict::Token))
                    } else {
                        Ok(())
                    }
                },
                |s| {
                    s.handoffs.insert(*key.as_bytes(), user_id);
                    Ok(())
                },
            )
            .await;
        match claimed {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(Conflict::Token)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn set_user_name(&self, id: UserId, name: Option<&str>) -> StoreResult<User> {
        let mut s = self.lock();
        let user = s.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        user.name = name.map(str::to_owned);
        Ok(user.clone())
    }

    async fn mark_email_verified(&self, id: UserId, at: OffsetDateTime) -> StoreResult<User> {
        let mut s = self.lock();
        let user = s.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        user.email_verified_at.get_or_insert(at);
        Ok(user.clone())
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        self.guarded(
            |s| {
                if !s.users.contains_key(&id) {
                    return Err(StoreError::NotFound);
                }
                if s.members
                    .keys()
                    .any(|&(org, user)| user == id && s.is_last_owner(org, user))
                {
                    return Err(StoreError::LastOwner);
                }
                Ok(())
            },
            |s| {
                s.users.remove(&id);
                s.passwords.remove(&id);
                s.external.retain(|_, a| a.user_id != id);
                s.sessions.retain(|_, x| x.user_id != id);
                s.members.retain(|&(_, user), _| user != id);
                s.tokens.retain(|_, t| t.user_id != id);
                s.api_tokens.retain(|_, t| t.user_id != id);
                s.handoffs.retain(|_, u| *u != id);
                s.oauth_flows.retain(|_, f| f.link_user_id != Some(id));
                s.totp.remove(&id);
                s.recovery_codes.retain(|&(user, _), _| user != id);
                s.passkeys.retain(|_, p| p.user_id != id);
                s.challenges.retain(|_, c| c.user_id != Some(id));
                for e in &mut s.audit {
                    e.actor_id = e.actor_id.filter(|&a| a != id);
                    e.user_id = e.user_id.filter(|&u| u != id);
                }
                Ok(())
            },
        )
        .await
    }

    async fn password_credential(
        &self,
        user_id: UserId,
    ) -> StoreResult<Option<PasswordCredential>> {
        Ok(self.lock().passwords.get(&user_id).cloned())
    }

    async fn set_password_hash(
        &self,
        user_id: UserId,
        hash: &SecretString,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&user_id) {
            return Err(StoreError::NotFound);
        }
        let credential = PasswordCredential {
            user_id,
            hash: hash.clone(),
            updated_at: at,
        };
        s.passwords.insert(user_id, credential);
        Ok(())
    }

    async fn remove_password(&self, user_id: UserId) -> StoreResult<bool> {
        Ok(self.lock().passwords.remove(&user_id).is_some())
    }
}

#[async_trait]
impl OAuthFlowStore for MemoryStore {
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()> {
        let mut s = self.lock();
        if s.oauth_flows.contains_key(flow.id_hash.as_bytes()) {
            return Err(StoreError::Conflict(Conflict::Token));
        }
        if flow
            .link_user_id
            .is_some_and(|id| !s.users.contains_key(&id))
        {
            return Err(StoreError::NotFound);
        }
        s.oauth_flows.insert(*flow.id_hash.as_bytes(), flow.clone());
        Ok(())
    }

    async fn take_oauth_flow(
        &self,
        id_hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OAuthFlow>> {
        let key = *id_hash.as_bytes();
        let flow = if self.racy {
            // Read, pause, then delete: what a store that does not take the row atomically does.
            let flow = self.lock().oauth_flows.get(&key).cloned();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.lock().oauth_flows.remove(&key);
            flow
        } else {
            self.lock().oauth_flows.remove(&key)
        };
        let Some(flow) = flow else {
            return Ok(None);
        };
        Ok((now < flow.expires_at).then_some(flow))
    }

    async fn delete_expired_oauth_flows(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.oauth_flows.len();
        s.oauth_flows.retain(|_, f| now < f.expires_at);
        Ok((before - s.oauth_flows.len()) as u64)
    }
}

#[async_trait]
impl ExternalAccountStore for MemoryStore {
    async fn link_external_account(&self, account: &ExternalAccount) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&account.user_id) {
            return Err(StoreError::NotFound);
        }
        let taken = s
            .external
            .values()
            .any(|a| a.issuer == account.issuer && a.subject == account.subject);
        if taken || s.external.contains_key(&account.id) {
            return Err(StoreError::Conflict(Conflict::ExternalAccount));
        }
        let provider_taken = s
            .external
            .values()
            .any(|a| a.user_id == account.user_id && a.provider == account.provider);
        if provider_taken {
            return Err(StoreError::Conflict(Conflict::ProviderLinked));
        }
        s.external.insert(account.id, account.clone());
        Ok(())
    }

    async fn external_account(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<ExternalAccount>> {
        let s = self.lock();
        Ok(s.external
            .values()
            .find(|a| a.issuer == issuer && a.subject == subject)
            .cloned())
    }

    async fn external_accounts_for_user(
        &self,
        user_id: UserId,
    ) -> StoreResult<Vec<ExternalAccount>> {
        let s = self.lock();
        let mut accounts: Vec<_> = s
            .external
            .values()
            .filter(|a| a.user_id == user_id)
            .cloned()
            .collect();
        accounts.sort_by_key(|a| (a.created_at, a.id));
        Ok(accounts)
    }

    async fn touch_external_account(
        &self,
        id: ExternalAccountId,
        email: Option<&str>,
        email_verified: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        let account = s.external.get_mut(&id).ok_or(StoreError::NotFound)?;
        account.email = email.map(str::to_owned);
        account.email_verified = email_verified;
        account.last_used_at = Some(at);
        Ok(())
    }

    async fn unlink_external_account(
        &self,
        user_id: UserId,
        id: ExternalAccountId,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        match s.external.get(&id) {
            Some(a) if a.user_id == user_id => {
                s.external.remove(&id);
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&session.user_id) {
            return Err(StoreError::NotFound);
        }
        if s.sessions
            .values()
            .any(|x| x.id == session.id || x.token_hash == session.token_hash)
        {
            return Err(StoreError::Conflict(Conflict::Token));
        }
        s.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn session_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        Ok(self
            .lock()
            .sessions
            .values()
            .find(|x| x.token_hash == *hash)
            .cloned())
    }

    async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>> {
        Ok(self.lock().sessions.get(&id).cloned())
    }

    async fn sessions_for_user(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        let s = self.lock();
        let mut live: Vec<_> = s
            .sessions
            .values()
            .filter(|x| x.user_id == user_id && !x.is_expired(now))
            .cloned()
            .collect();
        live.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
        Ok(live)
    }

    async fn extend_session(&self, id: SessionId, expires_at: OffsetDateTime) -> StoreResult<()> {
        let mut s = self.lock();
        let session = s.sessions.get_mut(&id).ok_or(StoreError::NotFound)?;
        session.expires_at = expires_at.min(session.absolute_expires_at);
        Ok(())
    }

    async fn record_session_activity(
        &self,
        seen: &[(SessionId, OffsetDateTime)],
    ) -> StoreResult<()> {
        let mut s = self.lock();
        for &(id, at) in seen {
            if let Some(session) = s.sessions.get_mut(&id) {
                session.last_seen_at = session.last_seen_at.max(at);
            }
        }
        Ok(())
    }

    async fn set_active_org(&self, id: SessionId, org_id: Option<OrgId>) -> StoreResult<()> {
        let mut s = self.lock();
        s.sessions
            .get_mut(&id)
            .ok_or(StoreError::NotFound)?
            .active_org_id = org_id;
        Ok(())
    }

    async fn set_session_authenticated_at(
        &self,
        id: SessionId,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        Ok(self
            .lock()
            .sessions
            .get_mut(&id)
            .map(|x| x.authenticated_at = at)
            .is_some())
    }

    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        Ok(self.lock().sessions.remove(&id).is_some())
    }

    async fn delete_sessions_for_user(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
    ) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.sessions.len();
        s.sessions
            .retain(|&id, x| x.user_id != user_id || Some(id) == except);
        Ok((before - s.sessions.len()) as u64)
    }

    async fn clear_active_org_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> StoreResult<Vec<SessionId>> {
        let mut s = self.lock();
        let mut cleared = Vec::new();
        for x in s.sessions.values_mut() {
            if x.user_id == user_id && x.active_org_id == Some(org_id) {
                x.active_org_id = None;
                cleared.push(x.id);
            }
        }
        Ok(cleared)
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.sessions.len();
        s.sessions.retain(|_, x| !x.is_expired(now));
        Ok((before - s.sessions.len()) as u64)
    }
}

#[async_trait]
impl OrganizationStore for MemoryStore {
    async fn create_organization(
        &self,
        org: &Organization,
        owner: UserId,
    ) -> StoreResult<Membership> {
        let membership = Membership {
            org_id: org.id,
            user_id: owner,
            role: Role::OWNER,
            joined_at: org.created_at,
        };
        self.guarded(
            |s| {
                if !s.users.contains_key(&owner) {
                    Err(StoreError::NotFound)
                } else if s.orgs.values().any(|o| o.slug == org.slug) {
                    Err(StoreError::Conflict(Conflict::OrgSlug))
                } else if org.external_id.is_some()
                    && s.orgs.values().any(|o| o.external_id == org.external_id)
                {
                    Err(StoreError::Conflict(Conflict::OrgExternalId))
                } else {
                    Ok(())
                }
            },
            |s| {
                s.orgs.insert(org.id, org.clone());
                s.members.insert((org.id, owner), membership.clone());
                Ok(membership.clone())
            },
        )
        .await
    }

    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        Ok(self.lock().orgs.get(&id).cloned())
    }

    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        Ok(self.lock().orgs.values().find(|o| o.slug == slug).cloned())
    }

    async fn organization_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<Organization>> {
        Ok(self
            .lock()
            .orgs
            .values()
            .find(|o| o.external_id.as_deref() == Some(external_id))
            .cloned())
    }

    async fn organizations(
        &self,
        after: Option<OrgId>,
        limit: u32,
    ) -> StoreResult<Vec<Organization>> {
        Ok(self
            .lock()
            .orgs
            .values()
            .filter(|o| after.is_none_or(|a| o.id > a))
            .take(limit.min(1000) as usize)
            .cloned()
            .collect())
    }

    async fn rename_organization(&self, id: OrgId, name: &str) -> StoreResult<Organization> {
        let mut s = self.lock();
        let org = s.orgs.get_mut(&id).ok_or(StoreError::NotFound)?;
        name.clone_into(&mut org.name);
        Ok(org.clone())
    }

    async fn delete_organization(&self, id: OrgId) -> StoreResult<()> {
        let mut s = self.lock();
        s.orgs.remove(&id).ok_or(StoreError::NotFound)?;
        s.members.retain(|&(org, _), _| org != id);
        s.invitations.retain(|_, i| i.org_id != id);
        s.api_tokens.retain(|_, t| t.org_id != id);
        for x in s.sessions.values_mut() {
            x.active_org_id = x.active_org_id.filter(|&o| o != id);
        }
        Ok(())
    }

    async fn organizations_for_user(&self, user_id: UserId) -> StoreResult<Vec<UserOrganization>> {
        let s = self.lock();
        let mut mine: Vec<_> = s
            .members
            .values()
            .filter(|m| m.user_id == user_id)
            .collect();
        mine.sort_by_key(|m| (m.joined_at, m.org_id));
        Ok(mine
            .into_iter()
            .map(|m| UserOrganization {
                organization: s.orgs[&m.org_id].clone(),
                role: m.role.clone(),
                joined_at: m.joined_at,
            })
            .collect())
    }

    async fn membership(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<Membership>> {
        Ok(self.lock().members.get(&(org_id, user_id)).cloned())
    }

    async fn members(&self, org_id: OrgId) -> StoreResult<Vec<Member>> {
        let s = self.lock();
        let mut members: Vec<_> = s.members.values().filter(|m| m.org_id == org_id).collect();
        members.sort_by_key(|m| (m.joined_at, m.user_id));
        Ok(members
            .into_iter()
            .map(|m| Member {
                membership: m.clone(),
                user: s.users[&m.user_id].clone(),
                second_factor: s.has_second_factor(m.user_id),
            })
            .collect())
    }

    async fn org_access(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<OrgAccess>> {
        let s = self.lock();
        Ok(s.members.get(&(org_id, user_id)).map(|m| OrgAccess {
            membership: m.clone(),
            mfa_required: s.orgs[&org_id].mfa_required,
            second_factor: s.has_second_factor(user_id),
        }))
    }

    async fn set_org_mfa_required(&self, id: OrgId, required: bool) -> StoreResult<Organization> {
        let mut s = self.lock();
        let org = s.orgs.get_mut(&id).ok_or(StoreError::NotFound)?;
        org.mfa_required = required;
        Ok(org.clone())
    }

    async fn add_member(&self, membership: &Membership) -> StoreResult<()> {
        let key = (membership.org_id, membership.user_id);
        self.guarded(
            |s| {
                if !s.orgs.contains_key(&key.0) || !s.users.contains_key(&key.1) {
                    Err(StoreError::NotFound)
                } else if s.members.contains_key(&key) {
                    Err(StoreError::Conflict(Conflict::Membership))
                } else {
                    Ok(())
                }
            },
            |s| {
                s.members.insert(key, membership.clone());
                Ok(())
            },
        )
        .await
    }

    async fn change_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &Role,
    ) -> StoreResult<Membership> {
        self.guarded(
            |s| {
                s.member(org_id, user_id)?;
                if !role.is_owner() && s.is_last_owner(org_id, user_id) {
                    return Err(StoreError::LastOwner);
                }
                Ok(())
            },
            |s| {
                let m = s
                    .members
                    .get_mut(&(org_id, user_id))
                    .ok_or(StoreError::NotFound)?;
                m.role = role.clone();
                Ok(m.clone())
            },
        )
        .await
    }

    async fn change_role_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
        role: &Role,
    ) -> StoreResult<Membership> {
        self.guarded(
            |s| {
                let current = s.member(org_id, user_id)?.role.clone();
                if current != *expected {
                    return Err(StoreError::RoleChanged { current });
                }
                if !role.is_owner() && s.is_last_owner(org_id, user_id) {
                    return Err(StoreError::LastOwner);
                }
                Ok(())
            },
            |s| {
                let m = s
                    .members
                    .get_mut(&(org_id, user_id))
                    .ok_or(StoreError::NotFound)?;
                m.role = role.clone();
                Ok(m.clone())
            },
        )
        .await
    }

    async fn remove_member_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
    ) -> StoreResult<()> {
        self.guarded(
            |s| {
                let current = s.member(org_id, user_id)?.role.clone();
                if current != *expected {
                    return Err(StoreError::RoleChanged { current });
                }
                if s.is_last_owner(org_id, user_id) {
                    return Err(StoreError::LastOwner);
                }
                Ok(())
            },
            |s| {
                s.members.remove(&(org_id, user_id));
                Ok(())
            },
        )
        .await
    }

    async fn remove_member(&self, org_id: OrgId, user_id: UserId) -> StoreResult<()> {
        self.guarded(
            |s| {
                s.member(org_id, user_id)?;
                if s.is_last_owner(org_id, user_id) {
                    return Err(StoreError::LastOwner);
                }
                Ok(())
            },
            |s| {
                s.members.remove(&(org_id, user_id));
                Ok(())
            },
        )
        .await
    }

    async fn transfer_ownership(
        &self,
        org_id: OrgId,
        from: UserId,
        to: UserId,
        from_becomes: &Role,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        s.member(org_id, to)?;
        if !s.member(org_id, from)?.role.is_owner() {
            return Err(StoreError::LastOwner);
        }
        s.members
            .get_mut(&(org_id, to))
            .ok_or(StoreError::NotFound)?
            .role = Role::OWNER;
        s.members
            .get_mut(&(org_id, from))
            .ok_or(StoreError::NotFound)?
            .role = from_becomes.clone();
        Ok(())
    }
}

#[async_trait]
impl InvitationStore for MemoryStore {
    async fn create_invitation(&self, invitation: &Invitation) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.orgs.contains_key(&invitation.org_id) || !s.users.contains_key(&invitation.invited_by)
        {
            return Err(StoreError::NotFound);
        }
        if s.invitations
            .values()
            .any(|i| i.id == invitation.id || i.token_hash == invitation.token_hash)
        {
            return Err(StoreError::Conflict(Conflict::Token));
        }
        s.invitations.insert(invitation.id, invitation.clone());
        Ok(())
    }

    async fn invitation(&self, id: InvitationId) -> StoreResult<Option<Invitation>> {
        Ok(self.lock().invitations.get(&id).cloned())
    }

    async fn invitation_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Invitation>> {
        Ok(self
            .lock()
            .invitations
            .values()
            .find(|i| i.token_hash == *hash)
            .cloned())
    }

    async fn pending_invitations(
        &self,
        org_id: OrgId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Invitation>> {
        let s = self.lock();
        let mut pending: Vec<_> = s
            .invitations
            .values()
            .filter(|i| i.org_id == org_id && i.is_pending(now))
            .cloned()
            .collect();
        pending.sort_by_key(|i| std::cmp::Reverse((i.created_at, i.id)));
        Ok(pending)
    }

    async fn revoke_invitation(
        &self,
        org_id: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        match s.invitations.get_mut(&id) {
            Some(i) if i.org_id == org_id && i.is_pending(at) => {
                i.revoked_at = Some(at);
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }

    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Membership> {
        self.guarded(
            |s| {
                let invitation = s.pending_invitation(hash, now)?;
                if !s.users.contains_key(&user_id) {
                    return Err(StoreError::NotFound);
                }
                if s.members.contains_key(&(invitation.org_id, user_id)) {
                    return Err(StoreError::Conflict(Conflict::Membership));
                }
                Ok(())
            },
            |s| {
                let invitation = s
                    .invitations
                    .values_mut()
                    .find(|i| i.token_hash == *hash)
                    .ok_or(StoreError::NotFound)?;
                invitation.accepted_at = Some(now);
                invitation.accepted_by = Some(user_id);
                let membership = Membership {
                    org_id: invitation.org_id,
                    user_id,
                    role: invitation.role.clone(),
                    joined_at: now,
                };
                s.members
                    .insert((membership.org_id, user_id), membership.clone());
                Ok(membership)
            },
        )
        .await
    }
}

#[async_trait]
impl OneTimeTokenStore for MemoryStore {
    async fn create_one_time_token(&self, token: &OneTimeToken) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&token.user_id) {
            return Err(StoreError::NotFound);
        }
        if s.tokens
            .values()
            .any(|t| t.id == token.id || t.token_hash == token.token_hash)
        {
            return Err(StoreError::Conflict(Conflict::Token));
        }
        s.tokens.insert(token.id, token.clone());
        Ok(())
    }

    async fn consume_one_time_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OneTimeToken>> {
        let found = self.lock().usable_token(purpose, hash, now);
        let Some(id) = found else { return Ok(None) };
        self.guarded(
            |s| {
                if s.usable_token(purpose, hash, now) == Some(id) {
                    Ok(())
                } else {
                    Err(StoreError::NotFound)
                }
            },
            |s| {
                let token = s.tokens.get_mut(&id).ok_or(StoreError::NotFound)?;
                token.used_at = Some(now);
                Ok(token.clone())
            },
        )
        .await
        .map(Some)
        .or_else(|e| match e {
            StoreError::NotFound => Ok(None),
            other => Err(other),
        })
    }

    async fn delete_one_time_tokens(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
    ) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.tokens.len();
        s.tokens
            .retain(|_, t| t.user_id != user_id || t.purpose != purpose);
        Ok((before - s.tokens.len()) as u64)
    }

    async fn delete_expired_one_time_tokens(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.tokens.len();
        s.tokens
            .retain(|_, t| now < t.expires_at && t.used_at.is_none_or(|u| u >= now));
        Ok((before - s.tokens.len()) as u64)
    }
}

#[async_trait]
impl ApiTokenStore for MemoryStore {
    async fn create_api_token(&self, record: &ApiTokenRecord) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&record.user_id)
            || !s.users.contains_key(&record.created_by)
            || !s.orgs.contains_key(&record.org_id)
        {
            return Err(StoreError::NotFound);
        }
        if s.api_tokens.contains_key(&record.id) {
            return Err(StoreError::Conflict(Conflict::Token));
        }
        s.api_tokens.insert(record.id, record.clone());
        Ok(())
    }

    async fn api_token(&self, id: ApiTokenId) -> StoreResult<Option<ApiTokenRecord>> {
        Ok(self.lock().api_tokens.get(&id).cloned())
    }

    async fn api_tokens_for_org(
        &self,
        org_id: OrgId,
        user_id: Option<UserId>,
    ) -> StoreResult<Vec<ApiTokenRecord>> {
        let s = self.lock();
        let mut records: Vec<_> = s
            .api_tokens
            .values()
            .filter(|t| t.org_id == org_id && user_id.is_none_or(|u| t.user_id == u))
            .cloned()
            .collect();
        records.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));
        Ok(records)
    }

    async fn revoke_api_token(
        &self,
        id: ApiTokenId,
        at: OffsetDateTime,
    ) -> StoreResult<ApiTokenRecord> {
        let mut s = self.lock();
        let record = s.api_tokens.get_mut(&id).ok_or(StoreError::NotFound)?;
        record.revoked_at.get_or_insert(at);
        Ok(record.clone())
    }

    async fn revoke_api_tokens_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<Vec<ApiTokenId>> {
        let mut s = self.lock();
        let mut revoked = Vec::new();
        for t in s.api_tokens.values_mut() {
            if t.org_id == org_id && t.user_id == user_id && t.revoked_at.is_none() {
                t.revoked_at = Some(at);
                revoked.push(t.id);
            }
        }
        Ok(revoked)
    }

    async fn record_api_token_use(&self, used: &[(ApiTokenId, OffsetDateTime)]) -> StoreResult<()> {
        let mut s = self.lock();
        for &(id, at) in used {
            if let Some(t) = s.api_tokens.get_mut(&id) {
                t.last_used_at = Some(t.last_used_at.map_or(at, |last| last.max(at)));
            }
        }
        Ok(())
    }

    async fn revoked_api_token_ids(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(ApiTokenId, OffsetDateTime)>> {
        let s = self.lock();
        Ok(s.api_tokens
            .values()
            .filter(|t| t.revoked_at.is_some() && now < t.expires_at)
            .map(|t| (t.id, t.expires_at))
            .collect())
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        self.lock().audit.push(event.clone());
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let s = self.lock();
        let before = match query.before {
            Some(id) => match s.audit.iter().find(|e| e.id == id) {
                Some(e) => Some((e.at, e.id)),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let mut events: Vec<_> = s
            .audit
            .iter()
            .filter(|e| {
                query
                    .user_id
                    .is_none_or(|u| e.user_id == Some(u) || e.actor_id == Some(u))
                    && query.org_id.is_none_or(|o| e.org_id == Some(o))
                    && before.is_none_or(|b| (e.at, e.id) < b)
                    && query.kind.as_deref().is_none_or(|k| e.kind == k)
                    && query.since.is_none_or(|t| e.at >= t)
                    && query.until.is_none_or(|t| e.at < t)
            })
            .cloned()
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        events.truncate(query.limit.min(1000) as usize);
        Ok(events)
    }

    async fn delete_audit_events_before(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64> {
        let mut s = self.lock();
        let mut old: Vec<_> = s
            .audit
            .iter()
            .filter(|e| e.at < before)
            .map(|e| (e.at, e.id))
            .collect();
        old.sort();
        old.truncate(limit as usize);
        s.audit.retain(|e| !old.contains(&(e.at, e.id)));
        Ok(old.len() as u64)
    }
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn rate_limit_hit(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        let read = |s: &State| s.rate_limits.get(key.as_bytes()).copied();
        let admission = if self.racy {
            // Read, decide, sleep, write: the lost update of a store without a row lock.
            let admission = rule.admit(read(&self.lock()), now);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if let Some(tat) = admission.new_tat {
                self.lock().rate_limits.insert(*key.as_bytes(), tat);
            }
            admission
        } else {
            let mut s = self.lock();
            let admission = rule.admit(read(&s), now);
            if let Some(tat) = admission.new_tat {
                s.rate_limits.insert(*key.as_bytes(), tat);
            }
            admission
        };
        Ok(admission.decision)
    }

    async fn rate_limit_peek(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        let tat = self.lock().rate_limits.get(key.as_bytes()).copied();
        Ok(rule.admit(tat, now).decision)
    }

    async fn rate_limit_refund(
        &self,
        key: &TokenHash,
        rule: RateLimit,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        if let Some(tat) = self.lock().rate_limits.get_mut(key.as_bytes()) {
            *tat = rule.refund(*tat, now);
        }
        Ok(())
    }

    async fn delete_expired_rate_limits(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.rate_limits.len();
        s.rate_limits.retain(|_, tat| *tat > now);
        Ok((before - s.rate_limits.len()) as u64)
    }
}

#[async_trait]
impl ChangeLogStore for MemoryStore {
    async fn record_change(&self, payload: &str, at: OffsetDateTime) -> StoreResult<i64> {
        let mut s = self.lock();
        s.change_version += 1;
        let version = s.change_version;
        s.change_log.insert(
            version,
            LoggedChange {
                version,
                payload: payload.to_owned(),
                at,
            },
        );
        Ok(version)
    }

    async fn change_version(&self) -> StoreResult<i64> {
        Ok(self.lock().change_version)
    }

    async fn changes_after(&self, after: i64, limit: u32) -> StoreResult<Vec<LoggedChange>> {
        Ok(self
            .lock()
            .change_log
            .range(after.saturating_add(1)..)
            .take(limit as usize)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn delete_changes_before(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let mut s = self.lock();
        let count = s.change_log.len();
        s.change_log.retain(|_, c| c.at >= before);
        Ok((count - s.change_log.len()) as u64)
    }
}

/// `Err(NotFound)` from a [`MemoryStore::guarded`] check that means "no" (the step, code or
/// challenge is not usable) becomes `Ok(false)`.
fn refused_is_false(result: StoreResult<()>) -> StoreResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl MfaStore for MemoryStore {
    async fn mfa_status(&self, user_id: UserId) -> StoreResult<MfaStatus> {
        let s = self.lock();
        let count = |n: usize| u32::try_from(n).map_err(StoreError::backend);
        Ok(MfaStatus {
            totp: s
                .totp
                .get(&user_id)
                .is_some_and(|f| f.confirmed_at.is_some()),
            passkeys: count(s.passkeys.values().filter(|p| p.user_id == user_id).count())?,
            recovery_codes: count(
                s.recovery_codes
                    .iter()
                    .filter(|((user, _), (_, used))| *user == user_id && used.is_none())
                    .count(),
            )?,
        })
    }

    async fn put_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&factor.user_id) {
            return Err(StoreError::NotFound);
        }
        if s.totp
            .get(&factor.user_id)
            .is_some_and(|f| f.confirmed_at.is_some())
        {
            return Err(StoreError::Conflict(Conflict::TotpFactor));
        }
        s.totp.insert(factor.user_id, factor.clone());
        Ok(())
    }

    async fn totp_factor(&self, user_id: UserId) -> StoreResult<Option<TotpFactor>> {
        Ok(self.lock().totp.get(&user_id).cloned())
    }

    async fn confirm_totp_factor(
        &self,
        user_id: UserId,
        step: i64,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        refused_is_false(
            self.guarded(
                |s| match s.totp.get(&user_id) {
                    Some(f) if f.confirmed_at.is_none() => Ok(()),
                    _ => Err(StoreError::NotFound),
                },
                |s| {
                    let f = s.totp.get_mut(&user_id).ok_or(StoreError::NotFound)?;
                    f.confirmed_at = Some(at);
                    f.last_used_step = Some(step);
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn use_totp_step(&self, user_id: UserId, step: i64) -> StoreResult<bool> {
        refused_is_false(
            self.guarded(
                |s| match s.totp.get(&user_id) {
                    Some(f)
                        if f.confirmed_at.is_some()
                            && f.last_used_step.is_none_or(|last| last < step) =>
                    {
                        Ok(())
                    }
                    _ => Err(StoreError::NotFound),
                },
                |s| {
                    s.totp
                        .get_mut(&user_id)
                        .ok_or(StoreError::NotFound)?
                        .last_used_step = Some(step);
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn delete_totp_factor(&self, user_id: UserId) -> StoreResult<bool> {
        Ok(self.lock().totp.remove(&user_id).is_some())
    }

    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        hashes: &[TokenHash],
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&user_id) {
            return Err(StoreError::NotFound);
        }
        s.recovery_codes.retain(|&(user, _), _| user != user_id);
        for hash in hashes {
            s.recovery_codes
                .insert((user_id, *hash.as_bytes()), (at, None));
        }
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        user_id: UserId,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let key = (user_id, *hash.as_bytes());
        refused_is_false(
            self.guarded(
                |s| match s.recovery_codes.get(&key) {
                    Some((_, None)) => Ok(()),
                    _ => Err(StoreError::NotFound),
                },
                |s| {
                    s.recovery_codes
                        .get_mut(&key)
                        .ok_or(StoreError::NotFound)?
                        .1 = Some(at);
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn delete_recovery_codes(&self, user_id: UserId) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.recovery_codes.len();
        s.recovery_codes.retain(|&(user, _), _| user != user_id);
        Ok((before - s.recovery_codes.len()) as u64)
    }

    async fn create_passkey(&self, passkey: &Passkey) -> StoreResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&passkey.user_id) {
            return Err(StoreError::NotFound);
        }
        if s.passkeys
            .values()
            .any(|p| p.id == passkey.id || p.credential_id == passkey.credential_id)
        {
            return Err(StoreError::Conflict(Conflict::Passkey));
        }
        s.passkeys.insert(passkey.id, passkey.clone());
        Ok(())
    }

    async fn passkeys_for_user(&self, user_id: UserId) -> StoreResult<Vec<Passkey>> {
        let s = self.lock();
        let mut mine: Vec<_> = s
            .passkeys
            .values()
            .filter(|p| p.user_id == user_id)
            .cloned()
            .collect();
        mine.sort_by_key(|p| (p.created_at, p.id));
        Ok(mine)
    }

    async fn passkey_by_credential_id(&self, credential_id: &[u8]) -> StoreResult<Option<Passkey>> {
        Ok(self
            .lock()
            .passkeys
            .values()
            .find(|p| p.credential_id == credential_id)
            .cloned())
    }

    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        credential: &str,
        backup_state: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        let passkey = s.passkeys.get_mut(&id).ok_or(StoreError::NotFound)?;
        credential.clone_into(&mut passkey.credential);
        passkey.backup_state = backup_state;
        passkey.last_used_at = Some(at);
        Ok(())
    }

    async fn rename_passkey(
        &self,
        user_id: UserId,
        id: PasskeyId,
        name: &str,
    ) -> StoreResult<bool> {
        let mut s = self.lock();
        match s.passkeys.get_mut(&id) {
            Some(p) if p.user_id == user_id => {
                name.clone_into(&mut p.name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> StoreResult<bool> {
        let mut s = self.lock();
        if s.passkeys.get(&id).is_some_and(|p| p.user_id == user_id) {
            s.passkeys.remove(&id);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

#[async_trait]
impl ChallengeStore for MemoryStore {
    async fn create_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        let mut s = self.lock();
        if challenge.user_id.is_some_and(|u| !s.users.contains_key(&u)) {
            return Err(StoreError::NotFound);
        }
        if s.challenges
            .values()
            .any(|c| c.id == challenge.id || c.token_hash == challenge.token_hash)
        {
            return Err(StoreError::Conflict(Conflict::Token));
        }
        s.challenges.insert(challenge.id, challenge.clone());
        Ok(())
    }

    async fn challenge(
        &self,
        kind: ChallengeKind,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        Ok(self.lock().live_challenge(kind, hash, now).cloned())
    }

    async fn take_challenge(
        &self,
        kind: ChallengeKind,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        let taken = if self.racy {
            // Read, pause, then delete: what a store that does not take the row atomically does.
            let found = self.lock().live_challenge(kind, hash, now).cloned();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if let Some(found) = &found {
                self.lock().challenges.remove(&found.id);
            }
            found
        } else {
            let mut s = self.lock();
            let found = s.live_challenge(kind, hash, now).cloned();
            if let Some(found) = &found {
                s.challenges.remove(&found.id);
            }
            found
        };
        Ok(taken)
    }

    async fn delete_expired_challenges(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut s = self.lock();
        let before = s.challenges.len();
        s.challenges.retain(|_, c| now < c.expires_at);
        Ok((before - s.challenges.len()) as u64)
    }
}

#[derive(Debug)]
struct MemoryHarness(Arc<MemoryStore>);

#[async_trait]
impl Harness for MemoryHarness {
    async fn setup() -> Self {
        Self(Arc::new(MemoryStore::default()))
    }

    fn store(&self) -> Arc<dyn AuthStore> {
        Arc::clone(&self.0) as Arc<dyn AuthStore>
    }

    async fn teardown(self) {
        drop(self.0);
    }
}

conformance_suite!(MemoryHarness);

/// Runs a race case against a racy store; the case must fail.
async fn fails_on_a_racy_store<Fut>(case: fn(Arc<dyn AuthStore>) -> Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let store: Arc<dyn AuthStore> = Arc::new(MemoryStore::racy());
    let outcome = tokio::spawn(case(store)).await;
    let err = outcome.expect_err("the race case passed on a store that races");
    assert!(err.is_panic(), "the case failed by panicking: {err}");
}

mod the_races_catch_a_store_without_locking {
    use super::{cases, fails_on_a_racy_store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sign_ups() {
        fails_on_a_racy_store(cases::concurrent_sign_ups_with_one_email_create_one_user).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_imports() {
        fails_on_a_racy_store(cases::concurrent_imports_of_one_external_id_create_one_user).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_handoffs() {
        fails_on_a_racy_store(cases::session_handoff_is_claimed_once_under_concurrency).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_org_creations() {
        fails_on_a_racy_store(cases::concurrent_creates_of_one_slug_create_one_organization).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_member_additions() {
        fails_on_a_racy_store(cases::concurrent_adds_of_one_member_create_one_membership).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn owners_demoting_each_other() {
        fails_on_a_racy_store(cases::owners_demoting_each_other_at_once_leave_one_owner).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn owners_removing_each_other() {
        fails_on_a_racy_store(cases::owners_removing_each_other_at_once_leave_one_owner).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn owners_deleting_themselves() {
        fails_on_a_racy_store(cases::owners_deleting_themselves_at_once_leave_one_owner).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_consumes() {
        fails_on_a_racy_store(cases::concurrent_consumes_of_one_token_succeed_once).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_accepts() {
        fails_on_a_racy_store(cases::concurrent_accepts_of_one_invitation_succeed_once).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_oauth_flow_takes() {
        fails_on_a_racy_store(cases::concurrent_takes_of_one_oauth_flow_succeed_once).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_totp_step_uses() {
        fails_on_a_racy_store(cases::concurrent_uses_of_one_totp_step_succeed_once).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_totp_confirmations() {
        fails_on_a_racy_store(cases::concurrent_confirmations_of_one_totp_factor_succeed_once)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_recovery_code_uses() {
        fails_on_a_racy_store(cases::concurrent_uses_of_one_recovery_code_succeed_once).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_challenge_takes() {
        fails_on_a_racy_store(cases::concurrent_takes_of_one_challenge_succeed_once).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_rate_limit_hits() {
        fails_on_a_racy_store(cases::concurrent_hits_on_one_key_allow_exactly_the_limit).await;
    }
}
