//! [`InvitationStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{
    Invitation, InvitationId, InvitationStore, Membership, OrgId, StoreError, StoreResult,
    TokenHash, UserId,
};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::{map_sqlx_error, retrying};
use crate::rows::{self, invitation_columns, membership_columns};

impl PostgresStore {
    async fn accept_invitation_once(
        &self,
        hash: &TokenHash,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Membership> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        // The claim: of concurrent accepts, the first UPDATE takes the row lock; the others
        // wait, re-check the WHERE against the accepted row and match nothing. If the winner
        // rolls back (say, a membership conflict), the next one gets it.
        let claimed = sqlx::query(self.sql(
            "UPDATE {t}invitations SET accepted_at = $3, accepted_by = $2 \
             WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL \
               AND expires_at > $3 \
             RETURNING org_id, role",
        ))
        .bind(&hash.as_bytes()[..])
        .bind(user_id.into_uuid())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx_error)?
        .ok_or(StoreError::NotFound)?;
        let org_id: Uuid = claimed.try_get("org_id").map_err(map_sqlx_error)?;
        let role: String = claimed.try_get("role").map_err(map_sqlx_error)?;
        // A member already: Conflict::Membership, and the rollback (dropping `tx`) leaves the
        // invitation pending.
        let row = sqlx::query(self.sql(concat!(
            "INSERT INTO {t}memberships (org_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
             RETURNING ",
            membership_columns!()
        )))
        .bind(org_id)
        .bind(user_id.into_uuid())
        .bind(role)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let membership = rows::membership(&row)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(membership)
    }
}

#[async_trait]
impl InvitationStore for PostgresStore {
    async fn create_invitation(&self, invitation: &Invitation) -> StoreResult<()> {
        sqlx::query(self.sql("INSERT INTO {t}invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
             expires_at, accepted_at, accepted_by, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
        )
        .bind(invitation.id.into_uuid())
        .bind(invitation.org_id.into_uuid())
        .bind(invitation.email.as_str())
        .bind(invitation.role.as_str())
        .bind(&invitation.token_hash.as_bytes()[..])
        .bind(invitation.invited_by.into_uuid())
        .bind(invitation.created_at)
        .bind(invitation.expires_at)
        .bind(invitation.accepted_at)
        .bind(invitation.accepted_by.map(UserId::into_uuid))
        .bind(invitation.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn invitation(&self, id: InvitationId) -> StoreResult<Option<Invitation>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM {t}invitations WHERE id = $1"
        )))
        .bind(id.into_uuid())
        .fetch_optional(&self.pool)
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
            " FROM {t}invitations WHERE token_hash = $1"
        )))
        .bind(&hash.as_bytes()[..])
        .fetch_optional(&self.pool)
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
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM {t}invitations \
             WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        )))
        .bind(org_id.into_uuid())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, rows::invitation)
    }

    async fn revoke_invitation(
        &self,
        org_id: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}invitations SET revoked_at = $3 \
             WHERE id = $2 AND org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL \
               AND expires_at > $3",
        ))
        .bind(org_id.into_uuid())
        .bind(id.into_uuid())
        .bind(at)
        .execute(&self.pool)
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
        retrying(|| self.accept_invitation_once(hash, user_id, now)).await
    }
}
