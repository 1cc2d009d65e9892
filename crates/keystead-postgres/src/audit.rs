//! [`AuditStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{AuditEvent, AuditQuery, AuditStore, OrgId, StoreError, StoreResult, UserId};
use time::OffsetDateTime;

use crate::PostgresStore;
use crate::error::map_sqlx_error;
use crate::rows::{self, audit_event_columns};

/// Most events one query returns.
const MAX_LIMIT: u32 = 1000;

impl PostgresStore {
    async fn insert_audit_event(&self, event: &AuditEvent, data: &str) -> StoreResult<()> {
        // The references are foreign keys that deletion clears (ON DELETE SET NULL). An event
        // about a user or organization that is already gone (recorded after the deletion) is
        // kept the same way: with the reference cleared, instead of refusing to log it.
        sqlx::query(self.sql("INSERT INTO {t}audit_events (id, at, kind, actor_id, user_id, org_id, ip, user_agent, data) \
             VALUES ($1, $2, $3, \
                     (SELECT id FROM {t}users WHERE id = $4), \
                     (SELECT id FROM {t}users WHERE id = $5), \
                     (SELECT id FROM {t}organizations WHERE id = $6), \
                     $7, $8, $9::jsonb)"),
        )
        .bind(event.id.into_uuid())
        .bind(event.at)
        .bind(event.kind.as_str())
        .bind(event.actor_id.map(UserId::into_uuid))
        .bind(event.user_id.map(UserId::into_uuid))
        .bind(event.org_id.map(OrgId::into_uuid))
        .bind(event.ip.as_deref())
        .bind(event.user_agent.as_deref())
        .bind(data)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        let data = serde_json::to_string(&event.data).map_err(StoreError::backend)?;
        match self.insert_audit_event(event, &data).await {
            // A referenced row was deleted between the lookup and the foreign key check; once
            // more, and the lookup sees it gone.
            Err(StoreError::NotFound) => self.insert_audit_event(event, &data).await,
            result => result,
        }
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let limit = i64::from(query.limit.min(MAX_LIMIT));
        // The statement is picked by the filters that lead: an organization reads its
        // `(org_id, at)` index, a user the `(user_id, at)` and `(actor_id, at)` ones (a bitmap
        // OR), anything else walks `(at, id)` from the newest; the other filters are checked
        // on the way. (A generic plan cannot use an index behind `$1 IS NULL OR …`.)
        macro_rules! select {
            ($lead:literal) => {
                concat!(
                    "SELECT ",
                    audit_event_columns!(),
                    " FROM {t}audit_events WHERE ",
                    $lead,
                    " AND ($3::uuid IS NULL \
                          OR (at, id) < (SELECT b.at, b.id FROM {t}audit_events b WHERE b.id = $3)) \
                      AND ($5::text IS NULL OR kind = $5) \
                      AND ($6::timestamptz IS NULL OR at >= $6) \
                      AND ($7::timestamptz IS NULL OR at < $7) \
                    ORDER BY at DESC, id DESC \
                    LIMIT $4"
                )
            };
        }
        let template = match (query.org_id.is_some(), query.user_id.is_some()) {
            (true, true) => select!("org_id = $2 AND (user_id = $1 OR actor_id = $1)"),
            (true, false) => select!("org_id = $2 AND $1::uuid IS NULL"),
            (false, true) => select!("(user_id = $1 OR actor_id = $1) AND $2::uuid IS NULL"),
            (false, false) => select!("$1::uuid IS NULL AND $2::uuid IS NULL"),
        };
        let found = sqlx::query(self.sql(template))
            .bind(query.user_id.map(UserId::into_uuid))
            .bind(query.org_id.map(OrgId::into_uuid))
            .bind(query.before.map(keystead_core::AuditEventId::into_uuid))
            .bind(limit)
            .bind(query.kind.as_deref())
            .bind(query.since)
            .bind(query.until)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        rows::all(&found, rows::audit_event)
    }

    async fn delete_audit_events_before(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64> {
        // The oldest first, through the (at, id) index, then each by its primary key; one
        // bounded statement per call. (`id IN (SELECT …)` lets a generic plan hash-join over a
        // scan of the whole table; `= ANY(ARRAY(…))` keeps it to the key.)
        let done = sqlx::query(self.sql(
            "DELETE FROM {t}audit_events WHERE id = ANY(ARRAY( \
                 SELECT id FROM {t}audit_events WHERE at < $1 ORDER BY at, id LIMIT $2))",
        ))
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
