//! The example app's HTML pages.

use crate::flows;
use crate::{AppUnderTest, Reply, SessionCookie};

/// Asserts a 200 HTML page and returns its text.
#[track_caller]
fn html(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "expected a page: {reply}");
    assert_eq!(reply.media_type(), "text/html", "expected HTML: {reply}");
    reply.text()
}

/// Asserts `page` contains every one of `needles`.
#[track_caller]
fn contains_all(reply: &Reply, page: &str, needles: &[&str]) {
    for needle in needles {
        assert!(page.contains(needle), "the page holds {needle:?}: {reply}");
    }
}

/// Asserts a 303 to `/sign-in?next=` the percent-encoded `next` (the `Location` may be
/// relative or on the app's origin).
#[track_caller]
fn assert_redirect_to_sign_in(app: &AppUnderTest, reply: &Reply, next: &str) {
    assert_eq!(reply.status, 303, "a redirect to sign-in: {reply}");
    let expected = format!("/sign-in?next={next}");
    let location = reply.header("location").unwrap_or_default();
    let location = location.strip_prefix(app.origin()).unwrap_or(location);
    assert_eq!(
        location, expected,
        "the redirect keeps where the user was going: {reply}"
    );
}

/// A browser's navigation to `path`, with `cookie` if given.
async fn visit(app: &AppUnderTest, path: &str, cookie: Option<&SessionCookie>) -> Reply {
    let request = app.client().get(path).accept_html();
    match cookie {
        Some(cookie) => request.cookie(cookie),
        None => request,
    }
    .send()
    .await
}

/// `GET /` is an HTML landing page that links to sign-in and sign-up.
pub async fn landing_page_is_html(app: &AppUnderTest) {
    let reply = visit(app, "/", None).await;
    let page = html(&reply);
    contains_all(&reply, &page, &["href=\"/sign-in\"", "href=\"/sign-up\""]);
}

/// `/sign-in` and `/sign-up` are HTML pages with their forms (`sign-in-form`, `sign-up-form`),
/// the inputs the forms send, and the element that shows errors.
pub async fn sign_in_and_sign_up_pages_have_their_forms(app: &AppUnderTest) {
    let reply = visit(app, "/sign-in", None).await;
    let page = html(&reply);
    contains_all(
        &reply,
        &page,
        &[
            "id=\"sign-in-form\"",
            "name=\"email\"",
            "name=\"password\"",
            "id=\"form-error\"",
        ],
    );
    let reply = visit(app, "/sign-up", None).await;
    let page = html(&reply);
    contains_all(
        &reply,
        &page,
        &[
            "id=\"sign-up-form\"",
            "name=\"name\"",
            "name=\"email\"",
            "name=\"password\"",
            "id=\"form-error\"",
        ],
    );
}

/// Without a session (none, or a dead one), `/dashboard` and the pages under it redirect (303)
/// to `/sign-in?next=` the path asked for.
pub async fn dashboard_without_a_session_redirects_to_sign_in(app: &AppUnderTest) {
    let reply = visit(app, "/dashboard", None).await;
    assert_redirect_to_sign_in(app, &reply, "%2Fdashboard");
    let reply = visit(app, "/dashboard/tokens", None).await;
    assert_redirect_to_sign_in(app, &reply, "%2Fdashboard%2Ftokens");
    let reply = visit(app, "/dashboard/members", None).await;
    assert_redirect_to_sign_in(app, &reply, "%2Fdashboard%2Fmembers");

    let account = flows::sign_up(app, "ada@example.com").await;
    app.client()
        .post_with("/auth/sign-out", &account.cookie)
        .await
        .expect(204);
    let reply = visit(app, "/dashboard", Some(&account.cookie)).await;
    assert_redirect_to_sign_in(app, &reply, "%2Fdashboard");
}

/// With a session, `/dashboard` is an HTML page showing the user's email and a sign-out
/// button; the tokens and members pages are HTML too.
pub async fn dashboard_with_a_session_shows_the_users_email(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let reply = visit(app, "/dashboard", Some(&account.cookie)).await;
    let page = html(&reply);
    contains_all(
        &reply,
        &page,
        &["id=\"user-email\"", "ada@example.com", "id=\"sign-out\""],
    );
    for path in ["/dashboard/tokens", "/dashboard/members"] {
        html(&visit(app, path, Some(&account.cookie)).await);
    }
}
