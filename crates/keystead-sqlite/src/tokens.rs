//! [`InvitationStore`], [`OneTimeTokenStore`] and [`ApiTokenStore`] for [`SqliteStore`].

use async_trait::async_trait;
use keystead_core::{
    ApiTokenId, ApiTokenRecord, ApiTokenStore, Conflict, Email, Invitation, InvitationId,
    InvitationStore, Membership, OneTimeToken, OneTimeTokenStore, OrgId, StoreError, StoreResult,
    TokenHash, TokenPurpose, UserId,
};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{
    self, RowExt, api_token_columns, invitation_columns, micros, one_time_token_columns,
    opt_micros, scopes_json,
};
use crate::sessions::batch_json;

#[async_trait]
impl InvitationStore for SqliteStore {
    async fn create_invitation(&self, invitation: &Invitation) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}invitations (id, org_id, email, role, token_hash, invited_by, \
                 created_at, expires_at, accepted_at, accepted_by, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        ))
        .bind(invitation.id.to_string())
        .bind(invitation.org_id.to_string())
        .bind(invitation.email.as_str())
        .bind(invitation.role.as_str())
        .bind(invitation.token_hash.as_bytes().as_slice())
        .bind(invitation.invited_by.to_string())
        .bind(micros(invitation.created_at))
        .bind(micros(invitation.expires_at))
        .bind(opt_micros(invitation.accepted_at))
        .bind(invitation.accepted_by.map(|id| id.to_string()))
        .bind(opt_micros(invitation.revoked_at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn invitation(&self, id: InvitationId) -> StoreResult<Option<Invitation>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM {t}invitations WHERE id = ?1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::invitation)
        .transpose()
    }

    async fn invitation_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Invitation>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM {t}invitations WHERE token_hash = ?1"
        )))
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::invitation)
        .transpose()
    }

    async fn pending_invitations(
        &self,
        org_id: OrgId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Invitation>> {
        let rows = sqlx::query(self.sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM {t}invitations \
              WHERE org_id = ?1 AND accepted_at IS NULL AND revoked_at IS NULL \
                  AND expires_at > ?2 \
              ORDER BY created_at DESC, id DESC"
        )))
        .bind(org_id.to_string())
        .bind(micros(now))
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&rows, rows::invitation)
    }

    async fn revoke_invitation(
        &self,
        org_id: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}invitations SET revoked_at = ?1 \
             WHERE id = ?2 AND org_id = ?3 AND accepted_at IS NULL AND revoked_at IS NULL \
                 AND expires_at > ?1",
        ))
        .bind(micros(at))
        .bind(id.to_string())
        .bind(org_id.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Membership> {
        let user = user_id.to_string();
        let now_us = micros(now);
        // BEGIN IMMEDIATE: of concurrent accepts, the first to get the write lock sees the
        // invitation pending and uses it; the others find it accepted.
        let mut tx = self.begin().await?;
        let invitation = sqlx::query(self.sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM {t}invitations \
              WHERE token_hash = ?1 AND accepted_at IS NULL AND revoked_at IS NULL \
                  AND expires_at > ?2"
        )))
        .bind(hash.as_bytes().as_slice())
        .bind(now_us)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::invitation)
        .transpose()?
        .ok_or(StoreError::NotFound)?;
        let org = invitation.org_id.to_string();

        let member = sqlx::query(
            self.sql("SELECT 1 FROM {t}memberships WHERE org_id = ?1 AND user_id = ?2"),
        )
        .bind(&org)
        .bind(&user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if member.is_some() {
            // Nothing changes: the transaction rolls back as it drops.
            return Err(StoreError::Conflict(Conflict::Membership));
        }

        let used = sqlx::query(self.sql(
            "UPDATE {t}invitations SET accepted_at = ?1, accepted_by = ?2 \
             WHERE id = ?3 AND accepted_at IS NULL AND revoked_at IS NULL",
        ))
        .bind(now_us)
        .bind(&user)
        .bind(invitation.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if used.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }

        let membership = Membership {
            org_id: invitation.org_id,
            user_id,
            role: invitation.role,
            joined_at: now,
        };
        // An unknown user fails the foreign key (on accepted_by, above, or here): NotFound.
        sqlx::query(self.sql(
            "INSERT INTO {t}memberships (org_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
        ))
        .bind(&org)
        .bind(&user)
        .bind(membership.role.as_str())
        .bind(now_us)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(membership)
    }
}

#[async_trait]
impl OneTimeTokenStore for SqliteStore {
    async fn create_one_time_token(&self, token: &OneTimeToken) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}one_time_tokens (id, purpose, user_id, token_hash, email, created_at, \
                 expires_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        ))
        .bind(token.id.to_string())
        .bind(token.purpose.as_str())
        .bind(token.user_id.to_string())
        .bind(token.token_hash.as_bytes().as_slice())
        .bind(token.email.as_ref().map(Email::as_str))
        .bind(micros(token.created_at))
        .bind(micros(token.expires_at))
        .bind(opt_micros(token.used_at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn consume_one_time_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OneTimeToken>> {
        // One statement: check and use are atomic, so of concurrent calls exactly one matches.
        sqlx::query(self.sql(concat!(
            "UPDATE {t}one_time_tokens SET used_at = ?1 \
             WHERE token_hash = ?2 AND purpose = ?3 AND used_at IS NULL AND expires_at > ?1 \
             RETURNING ",
            one_time_token_columns!()
        )))
        .bind(micros(now))
        .bind(hash.as_bytes().as_slice())
        .bind(purpose.as_str())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::one_time_token)
        .transpose()
    }

    async fn delete_one_time_tokens(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
    ) -> StoreResult<u64> {
        let done = sqlx::query(self.sql("DELETE FROM {t}one_time_tokens WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL"),
        )
        .bind(user_id.to_string())
        .bind(purpose.as_str())
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    async fn delete_expired_one_time_tokens(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(
            self.sql("DELETE FROM {t}one_time_tokens WHERE expires_at <= ?1 OR used_at < ?1"),
        )
        .bind(micros(now))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ApiTokenStore for SqliteStore {
    async fn create_api_token(&self, record: &ApiTokenRecord) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}api_tokens (id, name, user_id, org_id, scopes, created_by, created_at, \
                 expires_at, last_used_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        ))
        .bind(record.id.to_string())
        .bind(record.name.as_str())
        .bind(record.user_id.to_string())
        .bind(record.org_id.to_string())
        .bind(scopes_json(&record.scopes))
        .bind(record.created_by.to_string())
        .bind(micros(record.created_at))
        .bind(micros(record.expires_at))
        .bind(opt_micros(record.last_used_at))
        .bind(opt_micros(record.revoked_at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn api_token(&self, id: ApiTokenId) -> StoreResult<Option<ApiTokenRecord>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            api_token_columns!(),
            " FROM {t}api_tokens WHERE id = ?1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::api_token)
        .transpose()
    }

    async fn api_tokens_for_org(
        &self,
        org_id: OrgId,
        user_id: Option<UserId>,
    ) -> StoreResult<Vec<ApiTokenRecord>> {
        let rows = sqlx::query(self.sql(concat!(
            "SELECT ",
            api_token_columns!(),
            " FROM {t}api_tokens WHERE org_id = ?1 AND (?2 IS NULL OR user_id = ?2) \
              ORDER BY created_at DESC, id DESC"
        )))
        .bind(org_id.to_string())
        .bind(user_id.map(|id| id.to_string()))
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&rows, rows::api_token)
    }

    async fn revoke_api_token(
        &self,
        id: ApiTokenId,
        at: OffsetDateTime,
    ) -> StoreResult<ApiTokenRecord> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}api_tokens SET revoked_at = coalesce(revoked_at, ?1) WHERE id = ?2 RETURNING ",
            api_token_columns!()
        )))
        .bind(micros(at))
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::api_token)
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn revoke_api_tokens_for_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<Vec<ApiTokenId>> {
        let rows = sqlx::query(self.sql(
            "UPDATE {t}api_tokens SET revoked_at = ?1 \
             WHERE org_id = ?2 AND user_id = ?3 AND revoked_at IS NULL RETURNING id",
        ))
        .bind(micros(at))
        .bind(org_id.to_string())
        .bind(user_id.to_string())
        .fetch_all(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter().map(|row| row.id("id")).collect()
    }

    async fn record_api_token_use(&self, used: &[(ApiTokenId, OffsetDateTime)]) -> StoreResult<()> {
        if used.is_empty() {
            return Ok(());
        }
        sqlx::query(self.sql(
            "UPDATE {t}api_tokens \
             SET last_used_at = max(coalesce({t}api_tokens.last_used_at, used.at), used.at) \
             FROM (SELECT value ->> 0 AS id, max(value ->> 1) AS at \
                   FROM json_each(?1) GROUP BY 1) AS used \
             WHERE {t}api_tokens.id = used.id",
        ))
        .bind(batch_json(used))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn revoked_api_token_ids(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(ApiTokenId, OffsetDateTime)>> {
        // The partial index `api_tokens_revoked_idx` (expires_at WHERE revoked_at IS NOT NULL)
        // finds these rows without reading the unrevoked ones. No `ORDER BY id`: SQLite's
        // planner would walk the whole table by its primary key for it.
        let rows = sqlx::query(self.sql(
            "SELECT id, expires_at FROM {t}api_tokens \
             WHERE revoked_at IS NOT NULL AND expires_at > ?1",
        ))
        .bind(micros(now))
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter()
            .map(|row| Ok((row.id("id")?, row.time("expires_at")?)))
            .collect()
    }
}
