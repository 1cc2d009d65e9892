//! The audit log, read: `GET /orgs/{org_id}/audit` (admins and owners), its export as JSON
//! lines or CSV, the user's own `GET /auth/security-events`, and the pages that show them.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::orgs::join;
use crate::flows::{self, Account};
use crate::{AppUnderTest, SessionCookie, check};

/// The keys of an event.
const EVENT_KEYS: &[&str] = &[
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

/// An owner's organization (named `name`) with an admin and a member who joined by
/// invitation, and a signed-up outsider.
struct Team {
    org: String,
    owner: Account,
    admin: Account,
    member: Account,
    outsider: Account,
}

impl Team {
    async fn new(app: &AppUnderTest, name: &str) -> Self {
        let owner = flows::sign_up(app, "owner@example.com").await;
        let org = flows::create_org(app, &owner.cookie, name).await["id"]
            .as_str()
            .expect("an org id")
            .to_owned();
        let admin = join(app, &org, &owner.cookie, "admin@example.com", "admin").await;
        let member = join(app, &org, &owner.cookie, "member@example.com", "member").await;
        let outsider = flows::sign_up(app, "outsider@example.com").await;
        Self {
            org,
            owner,
            admin,
            member,
            outsider,
        }
    }
}

/// `GET path` with `cookie`, asserted 200 `{events, next_cursor}`; every event has exactly the
/// event keys. Returns the events and the cursor.
async fn page(
    app: &AppUnderTest,
    path: &str,
    cookie: &SessionCookie,
) -> (Vec<Value>, Option<String>) {
    let body = app.client().get_with(path, cookie).await.json_with(200);
    check::exact_keys(&body, &["events", "next_cursor"], "an audit page");
    let events = body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events is an array: {body}"))
        .clone();
    for event in &events {
        check::exact_keys(event, EVENT_KEYS, "an audit event");
        assert!(event["data"].is_object(), "{event}");
    }
    let cursor = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("next_cursor is a string or null: {other}"),
    };
    (events, cursor)
}

/// Every event `path` answers, page after page (`limit` each, `?` or `&` already in `path`),
/// asserting that each page but the last is full and names a cursor.
async fn walk(app: &AppUnderTest, path: &str, limit: usize, cookie: &SessionCookie) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let target = match &cursor {
            Some(c) => format!("{path}limit={limit}&cursor={c}"),
            None => format!("{path}limit={limit}"),
        };
        let (events, next) = page(app, &target, cookie).await;
        assert!(events.len() <= limit, "{target}: {} events", events.len());
        if next.is_some() {
            assert_eq!(
                events.len(),
                limit,
                "{target}: a page before the last is full"
            );
        }
        all.extend(events);
        match next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("{path}: the cursor never ends");
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn kinds(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind").to_owned())
        .collect()
}

/// Newest first: times (RFC 3339 in UTC, so comparable as text of one width once parsed)
/// never increase.
fn assert_newest_first(events: &[Value]) {
    let times: Vec<time::OffsetDateTime> = events
        .iter()
        .map(|e| {
            time::OffsetDateTime::parse(
                e["at"].as_str().expect("a time"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("an RFC 3339 time")
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {times:?}"
    );
}

/// `GET /orgs/{org_id}/audit`: owners and admins see the organization's events (creation,
/// invitations, acceptances; no client address or agent), newest first; a member and a
/// non-member get 403 `forbidden`, no session 401; `kind`, `user`, `since` and `until` filter,
/// and a malformed filter is 400 `invalid_request`.
pub async fn org_audit_log_is_for_admins_and_owners_and_filters(app: &AppUnderTest) {
    let team = Team::new(app, "Acme Inc").await;
    let path = format!("/orgs/{}/audit", team.org);
    let (all, next) = page(app, &format!("{path}?limit=200"), &team.owner.cookie).await;
    assert_eq!(next, None);
    assert_newest_first(&all);
    for kind in ["org.created", "member.invited", "invitation.accepted"] {
        assert!(kinds(&all).contains(kind), "{kind} missing from {all:?}");
    }
    for event in &all {
        assert_eq!(event["org_id"], team.org.as_str(), "{event}");
        assert_eq!(
            event["ip"],
            Value::Null,
            "no client address in the org log: {event}"
        );
        assert_eq!(event["user_agent"], Value::Null, "{event}");
    }
    let (as_admin, _) = page(app, &format!("{path}?limit=200"), &team.admin.cookie).await;
    assert_eq!(ids(&as_admin), ids(&all), "the admin sees the same log");
    app.client()
        .get_with(&path, &team.member.cookie)
        .await
        .problem(403, "forbidden");
    app.client()
        .get_with(&path, &team.outsider.cookie)
        .await
        .problem(403, "forbidden");
    app.client()
        .get_with(
            &format!("/orgs/{}/audit", uuid::Uuid::new_v4()),
            &team.owner.cookie,
        )
        .await
        .problem(403, "forbidden");
    app.client()
        .get(&path)
        .send()
        .await
        .problem(401, "unauthenticated");

    // kind
    let (invited, _) = page(
        app,
        &format!("{path}?kind=member.invited"),
        &team.owner.cookie,
    )
    .await;
    assert_eq!(invited.len(), 2, "two invitations: {invited:?}");
    assert!(invited.iter().all(|e| e["kind"] == "member.invited"));
    let (none, next) = page(
        app,
        &format!("{path}?kind=no.such.kind"),
        &team.owner.cookie,
    )
    .await;
    assert!(none.is_empty() && next.is_none());
    // user: events done by or concerning the member
    let member_id = team.member.id();
    let (theirs, _) = page(
        app,
        &format!("{path}?user={member_id}&limit=200"),
        &team.owner.cookie,
    )
    .await;
    assert!(kinds(&theirs).contains("invitation.accepted"), "{theirs:?}");
    assert!(
        theirs
            .iter()
            .all(|e| e["user_id"] == member_id || e["actor_id"] == member_id),
        "{theirs:?}"
    );
    let expected: Vec<String> = all
        .iter()
        .filter(|e| e["user_id"] == member_id || e["actor_id"] == member_id)
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids(&theirs), expected);
    // since and until split the log at an event's time: at or after, and before.
    let middle = &all[all.len() / 2];
    let at = middle["at"].as_str().unwrap();
    let at_q = at.replace(':', "%3A").replace('+', "%2B");
    let (after, _) = page(
        app,
        &format!("{path}?since={at_q}&limit=200"),
        &team.owner.cookie,
    )
    .await;
    let (before, _) = page(
        app,
        &format!("{path}?until={at_q}&limit=200"),
        &team.owner.cookie,
    )
    .await;
    assert!(ids(&after).contains(&middle["id"].as_str().unwrap().to_owned()));
    assert!(!ids(&before).contains(&middle["id"].as_str().unwrap().to_owned()));
    let mut joined = ids(&after);
    joined.extend(ids(&before));
    assert_eq!(joined, ids(&all), "since and until partition the log");
    let (window, _) = page(
        app,
        &format!("{path}?since={at_q}&until={at_q}"),
        &team.owner.cookie,
    )
    .await;
    assert!(window.is_empty(), "an empty window: {window:?}");

    for bad in [
        "user=bob",
        "since=yesterday",
        "until=2026-13-01",
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=not-a-cursor",
        "since=2026-12-02&until=2026-12-01",
    ] {
        app.client()
            .get_with(&format!("{path}?{bad}"), &team.owner.cookie)
            .await
            .problem(400, "invalid_request");
    }
}

/// `limit` and `cursor` walk the whole log, page by page, each event once and in the order of
/// one big page; the last page names no cursor. Also with a filter.
pub async fn org_audit_log_pages_with_a_cursor_without_gaps_or_duplicates(app: &AppUnderTest) {
    let owner = flows::sign_up(app, "owner@example.com").await;
    let org = flows::create_org(app, &owner.cookie, "Paged").await["id"]
        .as_str()
        .expect("an org id")
        .to_owned();
    for i in 0..9 {
        app.client()
            .post_json_with(
                &format!("/orgs/{org}/invitations"),
                &json!({"email": format!("invitee{i}@example.com"), "role": "member"}),
                &owner.cookie,
            )
            .await
            .expect(201);
    }
    let path = format!("/orgs/{org}/audit");
    let (whole, next) = page(app, &format!("{path}?limit=200"), &owner.cookie).await;
    assert_eq!(next, None);
    assert_eq!(
        whole.len(),
        10,
        "a creation and nine invitations: {whole:?}"
    );
    for limit in [1, 3, 4, 10] {
        let walked = walk(app, &format!("{path}?"), limit, &owner.cookie).await;
        assert_eq!(ids(&walked), ids(&whole), "limit {limit}");
    }
    let (first, next) = page(app, &format!("{path}?limit=10"), &owner.cookie).await;
    assert_eq!(first.len(), 10);
    assert_eq!(next, None, "a full last page names no cursor");
    let invited = walk(
        app,
        &format!("{path}?kind=member.invited&"),
        2,
        &owner.cookie,
    )
    .await;
    assert_eq!(invited.len(), 9);
    assert_eq!(
        ids(&invited),
        ids(&whole[..9]),
        "the invitations are the nine newest"
    );
    let (_, default_next) = page(app, &path, &owner.cookie).await;
    assert_eq!(default_next, None, "the default page (50) holds all ten");
}

/// `GET /orgs/{org_id}/audit/export`: JSON lines (the default) and CSV (`format=csv`), as
/// attachments, with the same events as the log; CSV cells are quoted, so a name with commas
/// and quotes reads back whole, and no cell starts like a formula. Members are refused.
pub async fn org_audit_export_is_jsonl_or_csv_with_cells_escaped(app: &AppUnderTest) {
    let name = "=cmd|' /C calc'!A0, \"Acme\", Inc";
    let team = Team::new(app, name).await;
    let path = format!("/orgs/{}/audit", team.org);
    let (all, _) = page(app, &format!("{path}?limit=200"), &team.admin.cookie).await;

    let jsonl = app
        .client()
        .get_with(&format!("{path}/export"), &team.admin.cookie)
        .await
        .expect(200);
    assert_eq!(jsonl.media_type(), "application/x-ndjson");
    assert_eq!(
        jsonl.header("content-disposition"),
        Some(format!("attachment; filename=\"audit-{}.jsonl\"", team.org).as_str())
    );
    let lines: Vec<Value> = jsonl
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines, all, "the JSON lines are the log's events");

    let csv = app
        .client()
        .get_with(&format!("{path}/export?format=csv"), &team.owner.cookie)
        .await
        .expect(200);
    assert_eq!(csv.media_type(), "text/csv");
    assert_eq!(
        csv.header("content-disposition"),
        Some(format!("attachment; filename=\"audit-{}.csv\"", team.org).as_str())
    );
    let text = csv.text();
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(headers, EVENT_KEYS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a CSV row")).collect();
    assert_eq!(rows.len(), all.len(), "{text}");
    for (row, event) in rows.iter().zip(&all) {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell starts like a formula: {cell:?}"
            );
        }
        assert_eq!(&row[0], event["id"].as_str().unwrap());
        assert_eq!(&row[2], event["kind"].as_str().unwrap());
        let data: Value = serde_json::from_str(&row[8]).expect("data is JSON");
        assert_eq!(data, event["data"]);
    }
    let created = rows
        .iter()
        .find(|r| &r[2] == "org.created")
        .expect("the creation is exported");
    let data: Value = serde_json::from_str(&created[8]).unwrap();
    assert_eq!(
        data["name"], name,
        "the name with commas and quotes reads back whole"
    );

    app.client()
        .get_with(&format!("{path}/export?format=csv"), &team.member.cookie)
        .await
        .problem(403, "forbidden");
    app.client()
        .get_with(&format!("{path}/export?format=xml"), &team.owner.cookie)
        .await
        .problem(400, "invalid_request");
    app.client()
        .get_with(&format!("{path}/export?since=soon"), &team.owner.cookie)
        .await
        .problem(400, "invalid_request");
    let (only, _) = page(
        app,
        &format!("{path}?kind=member.invited"),
        &team.owner.cookie,
    )
    .await;
    let filtered = app
        .client()
        .get_with(
            &format!("{path}/export?kind=member.invited"),
            &team.owner.cookie,
        )
        .await
        .expect(200);
    assert_eq!(
        filtered.text().lines().count(),
        only.len(),
        "the export filters too"
    );
}

/// `GET /auth/security-events`: the signed-in user's own sign-ins, failed sign-ins and
/// password change (with the client's address and agent, theirs), never another user's;
/// paged with a cursor; a session is needed.
pub async fn security_events_are_the_users_own(app: &AppUnderTest) {
    let ada = flows::sign_up(app, "ada@example.com").await;
    let bob = flows::sign_up(app, "bob@example.com").await;
    flows::try_sign_in(app, "ada@example.com", "not the password")
        .await
        .problem(401, "invalid_credentials");
    flows::try_sign_in(app, "bob@example.com", "not the password either")
        .await
        .problem(401, "invalid_credentials");
    let (_, ada_again) =
        flows::sign_in_as(app, "ada@example.com", &ada.password, "ada-laptop/1.0").await;
    flows::sign_in(app, "bob@example.com", &bob.password).await;

    let path = "/auth/security-events?";
    let mine = walk(app, path, 200, &ada_again).await;
    assert_newest_first(&mine);
    let got = kinds(&mine);
    for kind in ["sign_up", "sign_in.failed", "sign_in.succeeded"] {
        assert!(got.contains(kind), "{kind} missing from {mine:?}");
    }
    for event in &mine {
        assert!(
            event["user_id"] == ada.id() || event["actor_id"] == ada.id(),
            "not Ada's: {event}"
        );
        assert_ne!(event["user_id"], bob.id(), "{event}");
    }
    let laptop = mine
        .iter()
        .find(|e| e["kind"] == "sign_in.succeeded" && e["user_agent"] == "ada-laptop/1.0")
        .unwrap_or_else(|| panic!("the sign-in from the laptop, with its agent: {mine:?}"));
    assert!(
        laptop["ip"].is_string(),
        "the address of her own sign-in: {laptop}"
    );
    let failed = mine
        .iter()
        .find(|e| e["kind"] == "sign_in.failed")
        .expect("the failed sign-in");
    assert!(
        failed["ip"].is_string(),
        "the failed sign-in's address: {failed}"
    );

    let paged = walk(app, path, 1, &ada_again).await;
    assert_eq!(ids(&paged), ids(&mine), "paging one by one");
    let (failed_only, _) = page(app, &format!("{path}kind=sign_in.failed"), &ada_again).await;
    assert_eq!(failed_only.len(), 1, "{failed_only:?}");
    let bobs = walk(app, path, 50, &bob.cookie).await;
    assert!(
        ids(&bobs).iter().all(|id| !ids(&mine).contains(id)),
        "no event is both Ada's and Bob's"
    );
    app.client()
        .get_with(&format!("{path}user=x"), &ada_again)
        .await
        .problem(400, "invalid_request");
    app.client()
        .get("/auth/security-events")
        .send()
        .await
        .problem(401, "unauthenticated");
}

/// `/dashboard/audit` shows the active organization's log to its owner (escaped, with the
/// filter form, a next-page link when there is more, and the export links) and refuses a
/// member with 403; the members page links to it; `/dashboard/security` shows the user's own
/// events.
pub async fn audit_pages_render_for_admins_and_the_user(app: &AppUnderTest) {
    let team = Team::new(app, "<b>Bold</b> & Co").await;
    let html = |reply: &crate::Reply, status: u16| {
        assert_eq!(reply.status, status, "{reply}");
        assert_eq!(reply.media_type(), "text/html", "{reply}");
        reply.text()
    };
    let owner_view = app
        .client()
        .get("/dashboard/audit")
        .cookie(&team.owner.cookie)
        .accept_html()
        .send()
        .await;
    let body = html(&owner_view, 200);
    assert!(body.contains(r#"id="audit-filters""#), "{body}");
    assert!(body.contains(r#"id="audit-events""#), "{body}");
    assert!(
        body.contains("member.invited") && body.contains("org.created"),
        "{body}"
    );
    assert!(
        body.contains("&lt;b&gt;Bold&lt;&#x2f;b&gt; &amp; Co")
            || body.contains("&lt;b&gt;Bold&lt;/b&gt; &amp; Co"),
        "{body}"
    );
    assert!(
        !body.contains("<b>Bold</b>"),
        "the name must be escaped: {body}"
    );
    assert!(
        body.contains("admin@example.com"),
        "members by email: {body}"
    );
    // minijinja escapes `/` in attributes as `&#x2f;`, which a browser reads as `/`.
    let links = body.replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(
        links.contains(&format!(
            r#"href="/orgs/{}/audit/export?format=csv""#,
            team.org
        )),
        "{body}"
    );
    assert!(
        !body.contains(r#"id="audit-next""#),
        "one page holds it all: {body}"
    );

    let paged = app
        .client()
        .get("/dashboard/audit?kind=member.invited&limit=1")
        .cookie(&team.owner.cookie)
        .accept_html()
        .send()
        .await;
    let body = html(&paged, 200);
    assert!(body.contains(r#"id="audit-next""#), "{body}");
    let links = body.replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(
        links.contains(r#"href="/dashboard/audit?kind=member.invited&limit=1&cursor="#),
        "the next link keeps the filters: {body}"
    );

    let bad = app
        .client()
        .get("/dashboard/audit?since=whenever")
        .cookie(&team.owner.cookie)
        .accept_html()
        .send()
        .await;
    let body = html(&bad, 400);
    assert!(body.contains(r#"id="audit-error""#), "{body}");

    let member_view = app
        .client()
        .get("/dashboard/audit")
        .cookie(&team.member.cookie)
        .accept_html()
        .send()
        .await;
    let body = html(&member_view, 403);
    assert!(body.contains(r#"id="audit-forbidden""#), "{body}");
    assert!(!body.contains("member.invited"), "{body}");

    let members_page = app
        .client()
        .get("/dashboard/members")
        .cookie(&team.admin.cookie)
        .accept_html()
        .send()
        .await;
    assert!(html(&members_page, 200).contains(r#"id="audit-link""#));

    let security = app
        .client()
        .get("/dashboard/security")
        .cookie(&team.member.cookie)
        .accept_html()
        .send()
        .await;
    let body = html(&security, 200);
    assert!(body.contains(r#"id="security-events""#), "{body}");
    assert!(
        body.contains("sign_up") && body.contains("invitation.accepted"),
        "{body}"
    );
    app.client()
        .get("/dashboard/audit")
        .accept_html()
        .send()
        .await
        .expect(303);
}
