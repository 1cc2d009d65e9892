//! What the audit pages show: the active organization's audit log (`/dashboard/audit`, for
//! those with `audit:read`: admins and owners) and the user's own security events
//! (`/dashboard/security`), both with the filters and paging of the library's audit routes.

use keystead::audit::{self, AuditFilter, AuditPage};
use keystead::routes::{percent_decode, percent_encode};
use keystead::time::format_description::well_known::Rfc3339;
use keystead::{AuditEvent, Auth, AuthError, ErrorCode, Principal};
use serde_json::{Value, json};

/// An event as a table row: its time (RFC 3339), kind, who did it and whom it concerns (by
/// email when a member is known, else the id), the client when shown, and its data.
fn row(event: &AuditEvent, names: &[(String, String)]) -> Value {
    let name = |id: Option<keystead::UserId>| {
        id.map(|id| {
            let id = id.to_string();
            names
                .iter()
                .find(|(known, _)| *known == id)
                .map_or(id, |(_, email)| email.clone())
        })
    };
    json!({
        "at": event.at.format(&Rfc3339).unwrap_or_default(),
        "kind": event.kind,
        "actor": name(event.actor_id),
        "user": name(event.user_id),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "data": event.data.to_string(),
    })
}

/// The filters as the form shows them again, and the link to the next page.
fn filters_and_next(query: Option<&str>, path: &str, page: Option<&AuditPage>) -> (Value, Value) {
    let mut shown = serde_json::Map::new();
    let mut kept = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if ["user", "kind", "since", "until", "limit"].contains(&key) && !value.is_empty() {
            let decoded = percent_decode(value);
            kept.push(format!("{key}={}", percent_encode(&decoded)));
            shown.insert(key.to_owned(), Value::String(decoded));
        }
    }
    let next = page.and_then(|p| p.next_cursor.as_ref()).map(|cursor| {
        kept.push(format!("cursor={}", percent_encode(cursor)));
        format!("{path}?{}", kept.join("&"))
    });
    (Value::Object(shown), json!(next))
}

/// What `/dashboard/audit` shows for the query string `query`, and its status: the active
/// organization's events (200), the reason there are none to show (no organization, or no
/// `audit:read`: 403), or the filter's mistake (400), with the members to filter by.
///
/// # Errors
/// Store errors.
pub async fn audit_page_context(
    auth: &Auth,
    principal: &Principal,
    query: Option<&str>,
) -> Result<(u16, Value), AuthError> {
    let Some(org_id) = principal.org_id() else {
        return Ok((200, json!({ "user": principal.user, "org": null })));
    };
    let orgs = auth.orgs();
    let caller = match orgs.caller(principal, org_id).await {
        Ok(caller) => caller,
        Err(err) if err.code == ErrorCode::Forbidden => {
            return Ok((200, json!({ "user": principal.user, "org": null })));
        }
        Err(err) => return Err(err),
    };
    let org = orgs.organization(&caller).await?;
    let org_json = json!({ "id": org.id.to_string(), "name": org.name });
    if !caller.principal.has(audit::AUDIT_READ) {
        return Ok((
            403,
            json!({
                "user": principal.user,
                "org": org_json,
                "forbidden": true,
                "mfa_blocked": caller.principal.org_mfa_blocked(),
            }),
        ));
    }
    let members: Vec<(String, String)> = orgs
        .members(&caller)
        .await
        .unwrap_or_default()
        .iter()
        .map(|m| (m.user.id.to_string(), m.user.email.as_str().to_owned()))
        .collect();
    let member_options: Vec<Value> = members
        .iter()
        .map(|(id, email)| json!({ "id": id, "email": email }))
        .collect();
    let (filters, _) = filters_and_next(query, "/dashboard/audit", None);
    let base = json!({
        "user": principal.user,
        "org": org_json,
        "members": member_options,
        "kinds": keystead::AuditKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "filters": filters,
    });
    let filter = match AuditFilter::from_query(query) {
        Ok(filter) => filter,
        Err(err) => return Ok((400, with(base, "error", json!(err.detail)))),
    };
    let page = audit::org_audit_log(auth, &caller, &filter).await?;
    let (_, next) = filters_and_next(query, "/dashboard/audit", Some(&page));
    let rows: Vec<Value> = page.events.iter().map(|e| row(e, &members)).collect();
    let export = format!("/orgs/{}/audit/export", org.id);
    Ok((
        200,
        with(
            with(with(base, "events", json!(rows)), "next", next),
            "export",
            json!(export),
        ),
    ))
}

/// What `/dashboard/security` shows for the query string `query`, and its status: the user's
/// own security events (200), or the filter's mistake (400).
///
/// # Errors
/// Store errors.
pub async fn security_page_context(
    auth: &Auth,
    principal: &Principal,
    query: Option<&str>,
) -> Result<(u16, Value), AuthError> {
    let me = vec![(
        principal.user.id.to_string(),
        principal.user.email.as_str().to_owned(),
    )];
    let (filters, _) = filters_and_next(query, "/dashboard/security", None);
    let base = json!({
        "user": principal.user,
        "kinds": keystead::AuditKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "filters": filters,
    });
    let filter = match AuditFilter::from_query(query) {
        Ok(filter) => filter,
        Err(err) => return Ok((400, with(base, "error", json!(err.detail)))),
    };
    let page = audit::security_events(auth, principal.user.id, &filter).await?;
    let (_, next) = filters_and_next(query, "/dashboard/security", Some(&page));
    let rows: Vec<Value> = page.events.iter().map(|e| row(e, &me)).collect();
    Ok((200, with(with(base, "events", json!(rows)), "next", next)))
}

fn with(mut value: Value, key: &str, field: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert(key.to_owned(), field);
    }
    value
}
