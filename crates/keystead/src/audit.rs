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
use time::format_description::well_known::Rfc3339;

use crate::accounts::ClientInfo;
use crate::model::{AuditEvent, AuditKind, AuditQuery};
use crate::orgs::OrgCaller;
use crate::store::AuditStore;
use crate::{AuditEventId, Auth, AuthError, ErrorCode, UserId};

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

/// The permission to read an organization's audit log (`GET /orgs/{org_id}/audit` and its
/// export). The default roles grant it to admins and owners.
pub const AUDIT_READ: &str = "audit:read";

/// The most events one page of the audit routes holds.
pub const MAX_PAGE: u32 = 200;
/// The events of a page when the request names no `limit`.
pub const DEFAULT_PAGE: u32 = 50;
/// The most events one export answers; past it the answer names the cursor of the rest.
pub const MAX_EXPORT: usize = 10_000;

/// What a reader of the audit log asks for: the filters of `GET /orgs/{org_id}/audit`,
/// `GET /auth/security-events` and the export, parsed from a query string by
/// [`AuditFilter::from_query`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditFilter {
    /// `user`: only events done by or concerning this user.
    pub user_id: Option<UserId>,
    /// `kind`: only events of this kind.
    pub kind: Option<String>,
    /// `since`: only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// `until`: only events before this time.
    pub until: Option<OffsetDateTime>,
    /// `cursor`: only events after (older than) the page that answered it.
    pub cursor: Option<AuditEventId>,
    /// `limit`: how many, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        Self {
            user_id: None,
            kind: None,
            since: None,
            until: None,
            cursor: None,
            limit: DEFAULT_PAGE,
        }
    }
}

/// The longest `kind` a filter takes.
const MAX_KIND_LEN: usize = 100;

fn invalid(detail: String) -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest).with_detail(detail)
}

/// A time of a filter: RFC 3339, or a date (`2026-12-07`, its midnight in UTC).
fn parse_time(name: &str, value: &str) -> Result<OffsetDateTime, AuthError> {
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(at);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, date_format)
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| {
            invalid(format!(
                "{name} must be an RFC 3339 time or a date (YYYY-MM-DD)."
            ))
        })
}

impl AuditFilter {
    /// Parses `user`, `kind`, `since`, `until` (RFC 3339, or a date: its midnight in UTC),
    /// `cursor` and `limit` from a query string (`a=1&b=2`, percent-encoded); an empty value
    /// is an absent one and other names are ignored.
    ///
    /// # Errors
    /// `invalid_request` naming the parameter: a user that is no id, an empty or over-long
    /// kind, a time that does not parse, `since` after `until`, a cursor this API did not
    /// answer, a limit that is no whole number from 1 to [`MAX_PAGE`].
    pub fn from_query(query: Option<&str>) -> Result<Self, AuthError> {
        let mut filter = Self::default();
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = crate::routes::percent_decode(value);
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key {
                "user" => {
                    filter.user_id = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("user must be a user id.".to_owned()))?,
                    );
                }
                "kind" => {
                    if value.len() > MAX_KIND_LEN || value.chars().any(char::is_control) {
                        return Err(invalid("kind is not an event kind.".to_owned()));
                    }
                    filter.kind = Some(value.to_owned());
                }
                "since" => filter.since = Some(parse_time("since", value)?),
                "until" => filter.until = Some(parse_time("until", value)?),
                "cursor" => {
                    filter.cursor =
                        Some(value.parse().map_err(|_| {
                            invalid("cursor is not one this API answered.".to_owned())
                        })?);
                }
                "limit" => {
                    filter.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            invalid(format!(
                                "limit must be a whole number from 1 to {MAX_PAGE}."
                            ))
                        })?;
                }
                _ => {}
            }
        }
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since > until
        {
            return Err(invalid("since is after until.".to_owned()));
        }
        Ok(filter)
    }

    fn query(&self, limit: u32) -> AuditQuery {
        AuditQuery {
            user_id: self.user_id,
            org_id: None,
            kind: self.kind.clone(),
            since: self.since,
            until: self.until,
            before: self.cursor,
            limit,
        }
    }
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditPage {
    /// The events, newest first, as the reader may see them (see [`org_audit_log`] and
    /// [`security_events`] for what each leaves out).
    pub events: Vec<AuditEvent>,
    /// The `cursor` of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Reads one page (`filter.limit` events, one more to learn whether a next page exists).
async fn page(store: &dyn AuditStore, query: AuditQuery) -> Result<AuditPage, AuthError> {
    let limit = query.limit as usize;
    let mut events = store
        .audit_events(&AuditQuery {
            limit: query.limit + 1,
            ..query
        })
        .await?;
    let next_cursor = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(AuditPage {
        events,
        next_cursor,
    })
}

/// The audit log of the caller's organization (needs [`AUDIT_READ`]): one page of the events
/// recorded in it, matching `filter`. The client's address and user agent are left out: they
/// are the members' own (each sees theirs in [`security_events`]); the operator's
/// `authctl audit export` has them.
///
/// # Errors
/// `forbidden` (or `insufficient_scope` for a token) without the permission; store errors.
pub async fn org_audit_log(
    auth: &Auth,
    caller: &OrgCaller,
    filter: &AuditFilter,
) -> Result<AuditPage, AuthError> {
    caller.principal.require(AUDIT_READ)?;
    let mut found = page(
        &**auth.store(),
        AuditQuery {
            org_id: Some(caller.org_id()),
            ..filter.query(filter.limit)
        },
    )
    .await?;
    for event in &mut found.events {
        for_org_admins(event);
    }
    Ok(found)
}

/// What an organization's owners and admins see of an event: no client address or agent.
fn for_org_admins(event: &mut AuditEvent) {
    event.ip = None;
    event.user_agent = None;
}

/// The user's own security events: one page of the events that concern them or that they
/// did (sign-ins and failed ones, password changes, sessions, tokens, memberships…), matching
/// `filter` (whose `user` is ignored: it is always `user_id`). The client's address and user
/// agent are shown when the user did it or nobody did (a failed sign-in to their account),
/// never when someone else did (an admin who changed their role).
///
/// # Errors
/// Store errors.
pub async fn security_events(
    auth: &Auth,
    user_id: UserId,
    filter: &AuditFilter,
) -> Result<AuditPage, AuthError> {
    let mut found = page(
        &**auth.store(),
        AuditQuery {
            user_id: Some(user_id),
            ..filter.query(filter.limit)
        },
    )
    .await?;
    for event in &mut found.events {
        if event.actor_id.is_some_and(|actor| actor != user_id) {
            for_org_admins(event);
        }
    }
    Ok(found)
}

/// Every event of the caller's organization matching `filter` (its `limit` ignored), as
/// [`org_audit_log`] shows them, up to [`MAX_EXPORT`]; with the cursor of the rest when more
/// match.
///
/// # Errors
/// As [`org_audit_log`].
pub async fn org_audit_export(
    auth: &Auth,
    caller: &OrgCaller,
    filter: &AuditFilter,
) -> Result<AuditPage, AuthError> {
    caller.principal.require(AUDIT_READ)?;
    let mut all = Vec::new();
    let mut cursor = filter.cursor;
    loop {
        let left = MAX_EXPORT - all.len();
        // One more than a page is read (the store's cap is 1000).
        let limit = u32::try_from(left.min(500)).unwrap_or(500);
        let found = page(
            &**auth.store(),
            AuditQuery {
                org_id: Some(caller.org_id()),
                before: cursor,
                ..filter.query(limit)
            },
        )
        .await?;
        all.extend(found.events);
        match found.next_cursor {
            Some(_) if all.len() < MAX_EXPORT => cursor = all.last().map(|e| e.id),
            next => {
                for event in &mut all {
                    for_org_admins(event);
                }
                return Ok(AuditPage {
                    events: all,
                    next_cursor: next,
                });
            }
        }
    }
}

/// The columns of the CSV export, in order (those of `authctl audit export --format csv`).
pub const CSV_COLUMNS: [&str; 9] = [
    "id",
    "at",
    "kind",
    "actor_id",
    "user_id",
    "org_id",
    "ip",
    "user_agent",
    "data",
];

/// One CSV cell: quoted (inner quotes doubled), and a value a spreadsheet would take for a
/// formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) prefixed with `'`,
/// as OWASP's advice on CSV injection says.
#[must_use]
pub fn csv_cell(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let mut out = String::with_capacity(value.len() + 3);
    out.push('"');
    if formula {
        out.push('\'');
    }
    out.push_str(&value.replace('"', "\"\""));
    out.push('"');
    out
}

/// The CSV header line (with its CRLF).
#[must_use]
pub fn csv_header() -> String {
    csv_row(CSV_COLUMNS.iter().copied())
}

/// One CSV line of `cells`, each through [`csv_cell`], with its CRLF.
fn csv_row<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let mut line = cells.map(csv_cell).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// An event as one CSV line of [`CSV_COLUMNS`] (with its CRLF); an absent value is empty.
#[must_use]
pub fn csv_line(event: &AuditEvent) -> String {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let cells = [
        event.id.to_string(),
        opt(event.at.format(&Rfc3339).ok()),
        event.kind.clone(),
        opt(event.actor_id.map(|u| u.to_string())),
        opt(event.user_id.map(|u| u.to_string())),
        opt(event.org_id.map(|o| o.to_string())),
        opt(event.ip.clone()),
        opt(event.user_agent.clone()),
        event.data.to_string(),
    ];
    csv_row(cells.iter().map(String::as_str))
}

/// An event as one JSON line (with its `\n`): [`json_value`].
#[must_use]
pub fn json_line(event: &AuditEvent) -> String {
    let mut line = json_value(event).to_string();
    line.push('\n');
    line
}

/// An event as a JSON object: the fields of [`CSV_COLUMNS`], times in RFC 3339, absent values
/// `null` (the export's lines and `authctl`'s `--json` output).
#[must_use]
pub fn json_value(event: &AuditEvent) -> serde_json::Value {
    serde_json::json!({
        "id": event.id.to_string(),
        "at": event.at.format(&Rfc3339).ok(),
        "kind": event.kind,
        "actor_id": event.actor_id.map(|u| u.to_string()),
        "user_id": event.user_id.map(|u| u.to_string()),
        "org_id": event.org_id.map(|o| o.to_string()),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "data": event.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), r#""plain""#);
        assert_eq!(csv_cell("a,b"), r#""a,b""#);
        assert_eq!(csv_cell("say \"hi\""), r#""say ""hi""""#);
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        for formula in ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            let cell = csv_cell(formula);
            assert!(cell.starts_with("\"'"), "{cell}");
        }
    }

    #[test]
    fn filters_parse_or_are_invalid_requests() {
        let f = AuditFilter::from_query(Some(
            "kind=sign_in.failed&since=2026-12-01&until=2026-12-07T10%3A00%3A00Z&limit=7&x=1&user=",
        ))
        .unwrap();
        assert_eq!(f.kind.as_deref(), Some("sign_in.failed"));
        assert_eq!(f.since, Some(time::macros::datetime!(2026-12-01 0:00 UTC)));
        assert_eq!(f.until, Some(time::macros::datetime!(2026-12-07 10:00 UTC)));
        assert_eq!(f.limit, 7);
        assert_eq!(f.user_id, None);
        assert_eq!(
            AuditFilter::from_query(None).unwrap(),
            AuditFilter::default()
        );
        for bad in [
            "user=bob",
            "since=yesterday",
            "until=2026-13-01",
            "limit=0",
            "limit=201",
            "limit=-1",
            "limit=1.5",
            "cursor=abc",
            "since=2026-12-02&until=2026-12-01",
            "kind=a%0Ab",
        ] {
            let err = AuditFilter::from_query(Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
        }
    }
}
