//! Recording audit events: [`record`] is the one entry point every flow of the library writes
//! through, and the one an app uses for its own kinds ([`AuditEvent::custom`]).
//!
//! ```no_run
//! # async fn run(auth: &keystead::Auth, user: keystead::UserId) {
//! use keystead::{AuditEvent, audit};
//!
//! let event = AuditEvent {
//!     actor_id: Some(user),
//!     user_id: Some(user),
//!     data: serde_json::json!({ "invoice": "2026-0042" }),
//!     ..AuditEvent::custom("app.invoice_paid", auth.clock().now())
//! };
//! audit::record(&**auth.store(), &event).await;
//! # }
//! ```

use time::OffsetDateTime;

use crate::accounts::ClientInfo;
use crate::model::{AuditEvent, AuditKind};
use crate::store::AuditStore;

/// Writes `event` to the store. Never fails the flow that records it: a store error is logged
/// (at error, with the event's kind) and the event is lost.
pub async fn record<S: AuditStore + ?Sized>(store: &S, event: &AuditEvent) {
    if let Err(err) = store.record_audit_event(event).await {
        tracing::error!(error = %err, kind = %event.kind, "audit event not recorded");
    }
}

impl ClientInfo {
    /// An event of `kind` at `at`, from this client (its address and user agent); the rest as
    /// [`AuditEvent::new`].
    #[must_use]
    pub fn audit_event(&self, kind: AuditKind, at: OffsetDateTime) -> AuditEvent {
        AuditEvent {
            ip: Some(self.ip.to_string()),
            user_agent: self.user_agent.clone(),
            ..AuditEvent::new(kind, at)
        }
    }
}
