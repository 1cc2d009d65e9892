//! [`AuditStore`] for [`SqliteStore`].

use async_trait::async_trait;
use keystead_core::{AuditEvent, AuditQuery, AuditStore, StoreResult};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{self, audit_event_columns, micros};

/// The most events one query returns.
pub(crate) const MAX_AUDIT_EVENTS: u32 = 1000;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        // A reference to a user or organization that no longer exists (an event recorded
        // just after a deletion) is cleared, as the deletion clears older events' references,
        // instead of failing the foreign key: the event itself is always kept.
        sqlx::query(self.sql(
            "INSERT INTO {t}audit_events (id, at, kind, actor_id, user_id, org_id, ip, user_agent, \
                 data) \
             VALUES (?1, ?2, ?3, (SELECT id FROM {t}users WHERE id = ?4), \
                 (SELECT id FROM {t}users WHERE id = ?5), \
                 (SELECT id FROM {t}organizations WHERE id = ?6), ?7, ?8, ?9)",
        ))
        .bind(event.id.to_string())
        .bind(micros(event.at))
        .bind(event.kind.as_str())
        .bind(event.actor_id.map(|id| id.to_string()))
        .bind(event.user_id.map(|id| id.to_string()))
        .bind(event.org_id.map(|id| id.to_string()))
        .bind(event.ip.as_deref())
        .bind(event.user_agent.as_deref())
        .bind(event.data.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        // Newest first by (time, id); `before` pages on from that event's position (an
        // unknown `before` matches nothing). The statement is picked by the filters that lead:
        // an organization reads its `(org_id, at)` index, a user the `(user_id, at)` and
        // `(actor_id, at)` ones (a multi-index OR), anything else walks `(at, id)` from the
        // newest; the other filters are checked on the way.
        macro_rules! select {
            ($lead:literal) => {
                concat!(
                    "SELECT ",
                    audit_event_columns!(),
                    " FROM {t}audit_events WHERE ",
                    $lead,
                    " AND (?3 IS NULL OR (at, id) < (SELECT at, id FROM {t}audit_events WHERE id = ?3)) \
                      AND (?5 IS NULL OR kind = ?5) \
                      AND (?6 IS NULL OR at >= ?6) \
                      AND (?7 IS NULL OR at < ?7) \
                    ORDER BY at DESC, id DESC \
                    LIMIT ?4"
                )
            };
        }
        let template = match (query.org_id.is_some(), query.user_id.is_some()) {
            (true, true) => select!("org_id = ?2 AND (user_id = ?1 OR actor_id = ?1)"),
            (true, false) => select!("org_id = ?2 AND ?1 IS NULL"),
            (false, true) => select!("(user_id = ?1 OR actor_id = ?1) AND ?2 IS NULL"),
            (false, false) => select!("?1 IS NULL AND ?2 IS NULL"),
        };
        let rows = sqlx::query(self.sql(template))
            .bind(query.user_id.map(|id| id.to_string()))
            .bind(query.org_id.map(|id| id.to_string()))
            .bind(query.before.map(|id| id.to_string()))
            .bind(i64::from(query.limit.min(MAX_AUDIT_EVENTS)))
            .bind(query.kind.as_deref())
            .bind(query.since.map(micros))
            .bind(query.until.map(micros))
            .fetch_all(&self.reader)
            .await
            .map_err(map_sqlx_error)?;
        rows::all(&rows, rows::audit_event)
    }

    async fn delete_audit_events_before(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64> {
        // The oldest first, through the (at, id) index; one bounded statement per call.
        let done = sqlx::query(self.sql(
            "DELETE FROM {t}audit_events WHERE id IN \
                 (SELECT id FROM {t}audit_events WHERE at < ?1 ORDER BY at, id LIMIT ?2)",
        ))
        .bind(micros(before))
        .bind(i64::from(limit))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
