//! [`AuditStore`](keystead::AuditStore): the append-only audit log and its queries.
//!
//! Events are made one second apart, in order, so their times and their (UUID v7) ids agree
//! on what "newest" and "older than" mean.

use std::sync::Arc;

use keystead::{
    AuditEvent, AuditEventId, AuditQuery, AuthStore, Clock, ManualClock, OrgId, UserId,
};
use time::Duration;

use super::{given_org, given_user};
use crate::fixtures::audit_event;

fn query(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

async fn ids(store: &dyn AuthStore, query: &AuditQuery) -> Vec<AuditEventId> {
    store
        .audit_events(query)
        .await
        .expect("audit_events")
        .into_iter()
        .map(|e| e.id)
        .collect()
}

fn ids_of(events: &[&AuditEvent]) -> Vec<AuditEventId> {
    events.iter().map(|e| e.id).collect()
}

/// An event reads back with every field: all references, client details and structured data,
/// or none of them.
pub async fn audit_event_round_trips_every_field(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let actor = given_user(&*store, "actor@example.com").await;
    let subject = given_user(&*store, "subject@example.com").await;
    let org = given_org(&*store, "acme", actor.id, clock.now()).await;

    clock.advance(Duration::seconds(1));
    let bare = audit_event("system.started", clock.now());
    clock.advance(Duration::seconds(1));
    let mut full = audit_event("member.role_changed", clock.now());
    full.actor_id = Some(actor.id);
    full.user_id = Some(subject.id);
    full.org_id = Some(org.id);
    full.ip = Some("203.0.113.7".to_owned());
    full.user_agent = Some("curl/8.9.1".to_owned());
    full.data = serde_json::json!({
        "from": "member",
        "to": "admin",
        "count": 3,
        "big": 9_007_199_254_740_993_u64,
        "negative": -42,
        "flag": true,
        "nothing": null,
        "nested": { "list": [1, "two", false, null, { "deep": "ünïcødé \"quoted\"" }] },
    });
    store.record_audit_event(&bare).await.expect("record");
    store.record_audit_event(&full).await.expect("record");
    assert_eq!(
        store.audit_events(&query(10)).await.unwrap(),
        vec![full, bare]
    );
}

/// `audit_events` filters by user (events done by or concerning them), by organization, or
/// both, and lists newest first whatever the order of writing.
pub async fn audit_events_filter_by_user_and_org_newest_first(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let a = given_user(&*store, "a@example.com").await;
    let b = given_user(&*store, "b@example.com").await;
    let c = given_user(&*store, "c@example.com").await;
    let o1 = given_org(&*store, "one", a.id, clock.now()).await;
    let o2 = given_org(&*store, "two", b.id, clock.now()).await;

    let event = |actor: Option<UserId>, user: Option<UserId>, org: Option<OrgId>| {
        clock.advance(Duration::seconds(1));
        let mut e = audit_event("test.event", clock.now());
        e.actor_id = actor;
        e.user_id = user;
        e.org_id = org;
        e
    };
    let e1 = event(Some(a.id), None, Some(o1.id));
    let e2 = event(Some(b.id), Some(a.id), None);
    let e3 = event(Some(b.id), Some(b.id), Some(o2.id));
    let e4 = event(Some(c.id), Some(c.id), Some(o1.id));
    let e5 = event(None, Some(a.id), Some(o2.id));
    let e6 = event(None, None, None);
    for e in [&e3, &e1, &e6, &e4, &e2, &e5] {
        store.record_audit_event(e).await.unwrap();
    }

    let all = query(100);
    let by = |user: Option<UserId>, org: Option<OrgId>| AuditQuery {
        user_id: user,
        org_id: org,
        ..all.clone()
    };
    assert_eq!(
        ids(&*store, &all).await,
        ids_of(&[&e6, &e5, &e4, &e3, &e2, &e1]),
        "all"
    );
    assert_eq!(
        ids(&*store, &by(Some(a.id), None)).await,
        ids_of(&[&e5, &e2, &e1]),
        "a"
    );
    assert_eq!(
        ids(&*store, &by(Some(b.id), None)).await,
        ids_of(&[&e3, &e2]),
        "b"
    );
    assert_eq!(
        ids(&*store, &by(None, Some(o1.id))).await,
        ids_of(&[&e4, &e1]),
        "o1"
    );
    assert_eq!(
        ids(&*store, &by(Some(a.id), Some(o2.id))).await,
        ids_of(&[&e5]),
        "a in o2"
    );
    assert!(
        ids(&*store, &by(Some(c.id), Some(o2.id))).await.is_empty(),
        "c in o2"
    );
    assert!(
        ids(&*store, &by(None, Some(OrgId::new()))).await.is_empty(),
        "unknown org"
    );
    assert!(
        ids(&*store, &by(Some(UserId::new()), None))
            .await
            .is_empty(),
        "unknown user"
    );
}

/// `audit_events` pages newest first: `limit` caps a page (a huge limit is fine) and
/// `before` starts after a given event, with or without a filter.
pub async fn audit_events_page_with_before_and_limit(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let a = given_user(&*store, "a@example.com").await;
    let b = given_user(&*store, "b@example.com").await;
    let mut events = Vec::new();
    for i in 0..5 {
        clock.advance(Duration::seconds(1));
        let mut e = audit_event("page.event", clock.now());
        e.actor_id = Some(if i % 2 == 0 { a.id } else { b.id });
        e.data = serde_json::json!({ "i": i });
        events.push(e);
    }
    for e in events.iter().rev() {
        store.record_audit_event(e).await.unwrap();
    }
    let [e1, e2, e3, e4, e5] = [0, 1, 2, 3, 4].map(|i| &events[i]);
    let page = |before: Option<&AuditEvent>, limit: u32| AuditQuery {
        before: before.map(|e| e.id),
        ..query(limit)
    };

    assert_eq!(ids(&*store, &page(None, 2)).await, ids_of(&[e5, e4]));
    assert_eq!(ids(&*store, &page(Some(e4), 2)).await, ids_of(&[e3, e2]));
    assert_eq!(ids(&*store, &page(Some(e2), 2)).await, ids_of(&[e1]));
    assert!(ids(&*store, &page(Some(e1), 2)).await.is_empty());
    assert_eq!(ids(&*store, &page(None, 1)).await, ids_of(&[e5]));
    assert_eq!(
        ids(&*store, &page(None, u32::MAX)).await,
        ids_of(&[e5, e4, e3, e2, e1])
    );

    let by_a = |before: Option<&AuditEvent>| AuditQuery {
        user_id: Some(a.id),
        ..page(before, 10)
    };
    assert_eq!(ids(&*store, &by_a(None)).await, ids_of(&[e5, e3, e1]));
    assert_eq!(ids(&*store, &by_a(Some(e5))).await, ids_of(&[e3, e1]));
    assert_eq!(
        ids(&*store, &by_a(Some(e4))).await,
        ids_of(&[e3, e1]),
        "before another's event"
    );
    let full = store.audit_events(&page(Some(e4), 1)).await.unwrap();
    assert_eq!(full, vec![e3.clone()], "paged events read back whole");
}

/// `delete_audit_events_before` (the retention sweep's) deletes only events before the cut-off,
/// the oldest first and at most `limit` a call, whatever their references; the newer ones and
/// the one exactly at the cut-off stay, whole.
pub async fn delete_audit_events_before_removes_only_older_events_in_batches(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "old@example.com").await;
    let org = given_org(&*store, "acme", user.id, clock.now()).await;
    let mut events = Vec::new();
    for i in 0..6 {
        clock.advance(Duration::seconds(1));
        let mut e = audit_event("retention.event", clock.now());
        if i % 2 == 0 {
            e.user_id = Some(user.id);
            e.org_id = Some(org.id);
        }
        store.record_audit_event(&e).await.unwrap();
        events.push(e);
    }
    // The cut-off is the fourth event's time: the first three are older.
    let cutoff = events[3].at;
    assert_eq!(
        store.delete_audit_events_before(cutoff, 2).await.unwrap(),
        2,
        "a call deletes at most its limit"
    );
    let left = ids(&*store, &query(100)).await;
    let newest_first =
        |from: usize| -> Vec<AuditEventId> { events[from..].iter().rev().map(|e| e.id).collect() };
    assert_eq!(left, newest_first(2), "the oldest went first");
    assert_eq!(
        store.delete_audit_events_before(cutoff, 2).await.unwrap(),
        1
    );
    assert_eq!(
        store.delete_audit_events_before(cutoff, 2).await.unwrap(),
        0
    );
    assert_eq!(ids(&*store, &query(100)).await, newest_first(3));
    let kept = store.audit_events(&query(100)).await.unwrap();
    assert_eq!(
        kept.last(),
        Some(&events[3]),
        "the event at the cut-off stays, whole"
    );
    // The user's and the organization's queries see only what is left.
    let by_user = AuditQuery {
        user_id: Some(user.id),
        ..query(100)
    };
    assert_eq!(ids(&*store, &by_user).await, vec![events[4].id]);
    let in_org = AuditQuery {
        org_id: Some(org.id),
        ..query(100)
    };
    assert_eq!(ids(&*store, &in_org).await, vec![events[4].id]);
    assert_eq!(
        store.delete_audit_events_before(cutoff, 0).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_audit_events_before(clock.now() + Duration::seconds(1), 1000)
            .await
            .unwrap(),
        3
    );
    assert!(ids(&*store, &query(100)).await.is_empty());
}
