//! `GET /orgs/{org_id}/audit`, its export, and `GET /auth/security-events`: the audit log,
//! read (the rules are [`crate::audit`]'s; this module parses and answers).

use http::{StatusCode, header};

use super::schema::AuditPageReply;
use super::{Call, Reply};
use crate::audit::{self, AuditFilter};
use crate::orgs::OrgCaller;
use crate::{AuthError, ErrorCode, OrgId};

/// The organization of the path and the caller's membership there (a non-member, and an id
/// that is none, are answered alike: 403 `forbidden`, as on every `/orgs/{org_id}/…` route).
async fn caller(call: &Call<'_>) -> Result<OrgCaller, AuthError> {
    let principal = call.principal()?;
    let not_a_member = || {
        AuthError::new(ErrorCode::Forbidden)
            .with_detail("You are not a member of that organization.")
    };
    let org_id: OrgId = call.id_param("org_id").ok_or_else(not_a_member)?;
    call.auth.orgs().caller(principal, org_id).await
}

/// `GET /orgs/{org_id}/audit`: needs `audit:read` (admins and owners).
pub(super) async fn org_log(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let filter = AuditFilter::from_query(call.query.as_deref())?;
    let page = audit::org_audit_log(call.auth, &caller, &filter).await?;
    Ok(Reply::json(StatusCode::OK, &AuditPageReply::from(&page)))
}

/// `GET /auth/security-events`: the signed-in user's own events.
pub(super) async fn security_events(call: &Call<'_>) -> Result<Reply, AuthError> {
    let principal = call.principal()?;
    let filter = AuditFilter::from_query(call.query.as_deref())?;
    let page = audit::security_events(call.auth, principal.user.id, &filter).await?;
    Ok(Reply::json(StatusCode::OK, &AuditPageReply::from(&page)))
}

/// The header that names the cursor of what an export left out.
const NEXT_CURSOR_HEADER: &str = "audit-next-cursor";

/// `GET /orgs/{org_id}/audit/export?format=jsonl|csv`: needs `audit:read`.
pub(super) async fn org_export(call: &Call<'_>) -> Result<Reply, AuthError> {
    let caller = caller(call).await?;
    let filter = AuditFilter::from_query(call.query.as_deref())?;
    let csv = match call.query_param("format").as_deref().map(str::trim) {
        None | Some("" | "jsonl") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(AuthError::new(ErrorCode::InvalidRequest)
                .with_detail("format must be jsonl or csv."));
        }
    };
    let page = audit::org_audit_export(call.auth, &caller, &filter).await?;
    let name = format!("audit-{}", caller.org_id());
    let reply = if csv {
        let mut body = audit::csv_header();
        for event in &page.events {
            body.push_str(&audit::csv_line(event));
        }
        Reply::download("text/csv; charset=utf-8", &format!("{name}.csv"), body)
    } else {
        let body: String = page.events.iter().map(audit::json_line).collect();
        Reply::download("application/x-ndjson", &format!("{name}.jsonl"), body)
    };
    Ok(match page.next_cursor {
        Some(cursor) => reply.header(header::HeaderName::from_static(NEXT_CURSOR_HEADER), cursor),
        None => reply,
    })
}
