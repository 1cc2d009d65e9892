//! The audit log's export through the core's HTTP routes
//! ([`Auth::handle`](keystead::Auth::handle)) on each real store: an event of an app's own
//! kind that a spreadsheet would read as a formula, with commas, quotes and a line break in
//! its data, comes out of the CSV defused and quoted, and whole in the JSON lines.

use std::sync::Arc;

use http::StatusCode;
use keystead::{AuditEvent, AuthStore, Clock};
use serde_json::{Value, json};

use super::http_routes::{Req, app, assert_problem, assert_status, json_of};

/// `GET /orgs/{org_id}/audit/export`: CSV cells are quoted (quotes doubled, line breaks kept
/// inside the quotes) and a cell that starts like a formula gets a `'` first; the JSON lines
/// carry the same event unchanged; a non-member is refused.
pub async fn http_audit_export_quotes_cells_and_defuses_formulas(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (owner_id, owner) = app.sign_up("owner@example.com").await;
    let response = app
        .send(
            Req::post("/orgs")
                .cookie(&owner)
                .json(&json!({ "name": "Acme" })),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
    let org_id = json_of(&response)["id"].as_str().unwrap().to_owned();
    // An app's own kind (apps choose them freely): a formula, with a comma, quotes and a line
    // break; the data's note holds them too (inside the data's JSON text).
    let formula = "=cmd|' /C calc'!A0,\"x\"\ny";
    let note = "a,b \"quoted\"\nnext line";
    let event = AuditEvent {
        org_id: Some(org_id.parse().unwrap()),
        actor_id: Some(owner_id.parse().unwrap()),
        data: json!({ "note": note }),
        ..AuditEvent::custom(formula, app.clock.now())
    };
    store.record_audit_event(&event).await.unwrap();

    let csv = app
        .send(
            Req::get(&format!("/orgs/{org_id}/audit/export?format=csv"))
                .cookie(&owner)
                .empty(),
        )
        .await;
    assert_status(&csv, StatusCode::OK);
    let header = |name: &str| {
        csv.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"audit-{org_id}.csv\"")
    );
    let body = String::from_utf8(csv.body().to_vec()).unwrap();
    assert!(
        body.starts_with(
            "\"id\",\"at\",\"kind\",\"actor_id\",\"user_id\",\"org_id\",\"ip\",\"user_agent\",\"data\"\r\n"
        ),
        "{body}"
    );
    let data_cell = format!(
        "\"{}\"",
        json!({ "note": note }).to_string().replace('"', "\"\"")
    );
    let line = format!(
        "\"{}\",\"{}\",\"'{}\",\"{owner_id}\",\"\",\"{org_id}\",\"\",\"\",{data_cell}\r\n",
        event.id,
        keystead::time::OffsetDateTime::format(
            event.at,
            &keystead::time::format_description::well_known::Rfc3339
        )
        .unwrap(),
        formula.replace('"', "\"\""),
    );
    assert!(body.contains(&line), "the line {line:?} is not in {body:?}");
    assert!(
        !body.contains(&format!("\"{formula}")),
        "a cell starts with the formula: {body}"
    );

    let jsonl = app
        .send(
            Req::get(&format!("/orgs/{org_id}/audit/export"))
                .cookie(&owner)
                .empty(),
        )
        .await;
    assert_status(&jsonl, StatusCode::OK);
    assert_eq!(
        jsonl.headers().get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let lines: Vec<Value> = String::from_utf8(jsonl.body().to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let exported = lines
        .iter()
        .find(|l| l["id"] == event.id.to_string())
        .expect("the event is exported");
    assert_eq!(exported["kind"], formula);
    assert_eq!(exported["data"]["note"], note);
    assert!(lines.iter().any(|l| l["kind"] == "org.created"));

    let (_, outsider) = app.sign_up("outsider@example.com").await;
    let refused = app
        .send(
            Req::get(&format!("/orgs/{org_id}/audit/export?format=csv"))
                .cookie(&outsider)
                .empty(),
        )
        .await;
    assert_problem(&refused, 403, "forbidden");
    let bad = app
        .send(
            Req::get(&format!("/orgs/{org_id}/audit/export?format=xlsx"))
                .cookie(&owner)
                .empty(),
        )
        .await;
    assert_problem(&bad, 400, "invalid_request");
}

/// An export answers at most `keystead::audit::MAX_EXPORT` events; past it the
/// `Audit-Next-Cursor` header names the cursor of the rest, and the export with that cursor
/// carries on where the first stopped: every event once.
pub async fn http_audit_export_past_its_cap_names_the_cursor_of_the_rest(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, owner) = app.sign_up("owner@example.com").await;
    let response = app
        .send(
            Req::post("/orgs")
                .cookie(&owner)
                .json(&json!({ "name": "Bulk" })),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
    let org_id = json_of(&response)["id"].as_str().unwrap().to_owned();
    let extra = 10;
    let start = app.clock.now();
    for i in 0..keystead::audit::MAX_EXPORT + extra {
        let event = AuditEvent {
            org_id: Some(org_id.parse().unwrap()),
            ..AuditEvent::custom(
                "app.bulk",
                start + keystead::time::Duration::milliseconds(i as i64 + 1),
            )
        };
        store.record_audit_event(&event).await.unwrap();
    }
    let export = |cursor: Option<String>| {
        let path = match cursor {
            Some(c) => format!("/orgs/{org_id}/audit/export?cursor={c}"),
            None => format!("/orgs/{org_id}/audit/export"),
        };
        let owner = owner.clone();
        let app = &app;
        async move {
            let response = app.send(Req::get(&path).cookie(&owner).empty()).await;
            assert_status(&response, StatusCode::OK);
            let next = response
                .headers()
                .get("audit-next-cursor")
                .map(|v| v.to_str().unwrap().to_owned());
            let ids: Vec<String> = String::from_utf8(response.body().to_vec())
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            (ids, next)
        }
    };
    let (first, next) = export(None).await;
    assert_eq!(first.len(), keystead::audit::MAX_EXPORT);
    assert_eq!(next.as_deref(), first.last().map(String::as_str));
    let (rest, after) = export(next).await;
    assert_eq!(after, None, "the rest fits");
    // The rest: the oldest bulk events and the organization's creation.
    assert_eq!(rest.len(), extra + 1);
    let mut all: Vec<&String> = first.iter().chain(&rest).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no event twice");
}
