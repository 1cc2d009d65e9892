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

/// A protected path is protected however it is spelled: `/%64ashboard` (the router decodes it
/// to `/dashboard`) without a session redirects to sign-in, never shows a page.
pub async fn percent_encoded_dashboard_without_a_session_redirects_to_sign_in(app: &AppUnderTest) {
    for path in [
        "/%64ashboard",
        "/dashboard/%74okens",
        "/%64ashboard/members",
    ] {
        let reply = visit(app, path, None).await;
        assert_eq!(reply.status, 303, "{path}: a redirect to sign-in: {reply}");
        let location = reply.header("location").unwrap_or_default();
        let location = location.strip_prefix(app.origin()).unwrap_or(location);
        assert!(
            location.starts_with("/sign-in?next="),
            "{path}: a redirect to sign-in: {reply}"
        );
    }
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

/// The opening `<form …>` tags of `page`.
fn form_tags(page: &str) -> Vec<&str> {
    page.match_indices("<form")
        .map(|(at, _)| {
            let rest = &page[at..];
            &rest[..rest.find('>').map_or(rest.len(), |end| end + 1)]
        })
        .collect()
}

/// The value of attribute `name` in `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// The forms of `/sign-in`, `/sign-up` and `/forgot-password` say `method="post"` and post to
/// the library's route, so a browser without the script never puts the password (or email)
/// into a URL: such a form post reaches the JSON-only route as a form body and is answered 415
/// `unsupported_media_type`, with no redirect and no session.
pub async fn sign_in_and_sign_up_forms_post_without_the_script(app: &AppUnderTest) {
    for path in ["/sign-in", "/sign-up", "/forgot-password"] {
        let reply = visit(app, path, None).await;
        let page = html(&reply);
        let forms = form_tags(&page);
        assert!(!forms.is_empty(), "{path} has a form: {reply}");
        for form in forms {
            assert_eq!(
                attribute(form, "method"),
                Some("post"),
                "{path}: {form} posts"
            );
            if let Some(endpoint) = attribute(form, "data-endpoint") {
                assert_eq!(
                    attribute(form, "action"),
                    Some(endpoint),
                    "{path}: {form} posts to its route without the script"
                );
            }
        }
    }
    let password = "correct horse battery staple";
    flows::sign_up_with(app, "ada@example.com", password).await;
    for route in ["/auth/sign-in", "/auth/sign-up"] {
        let reply = app
            .client()
            .post(route)
            .app_origin()
            .accept_html()
            .body(
                Some("application/x-www-form-urlencoded"),
                format!(
                    "email=ada%40example.com&password={}",
                    password.replace(' ', "+")
                )
                .into_bytes(),
            )
            .send()
            .await;
        reply.problem(415, "unsupported_media_type");
        assert_eq!(reply.header("location"), None, "{reply}");
        assert!(reply.session_set_cookie().is_none(), "{reply}");
        assert!(!reply.text().contains("horse"), "{reply}");
    }
}

/// Runs the page script's `localNext()` (as served at `/static/app.js`) with `?next=` each of
/// `cases` in node, with the browser objects it reads stubbed; what it answered for each.
async fn script_next(app: &AppUnderTest, cases: &[String]) -> Vec<Option<String>> {
    const HARNESS: &str = r#"
const fs = require("fs");
const vm = require("vm");
const source = fs.readFileSync(process.argv[1], "utf8");
const context = { document: { addEventListener() {} }, location: { search: "" }, URLSearchParams, TextEncoder };
vm.createContext(context);
vm.runInContext(source, context);
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const out = cases.map((next) => {
  context.location.search = "?next=" + encodeURIComponent(next);
  const got = vm.runInContext("localNext()", context);
  return got === null || got === undefined ? null : got;
});
process.stdout.write(JSON.stringify(out));
"#;
    let script = app.client().get("/static/app.js").send().await.expect(200);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("app.js");
    std::fs::write(&path, script.text()).expect("write app.js");
    let mut child = tokio::process::Command::new("node")
        .arg("-e")
        .arg(HARNESS)
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (the contract suite needs node on PATH)");
    let input = serde_json::to_vec(cases).expect("cases serialize");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &input)
        .await
        .expect("write the cases");
    drop(stdin);
    let output = child.wait_with_output().await.expect("node finishes");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("node answers a JSON array")
}

/// The page script follows `next` after sign-in only to a path on this site, by the server's
/// rule: not `//host` or `/\host`, and not a path a browser turns into one by dropping tabs
/// and newlines (`/\t/evil.example`), no control characters, at most 2048 bytes.
pub async fn the_page_script_follows_next_only_to_local_paths(app: &AppUnderTest) {
    let long = |unit: &str, n: usize| format!("/{}", unit.repeat(n));
    let honoured = [
        "/dashboard".to_owned(),
        "/dashboard/tokens?tab=a b&x=é".to_owned(),
        "/a?next=//evil.example".to_owned(),
        "/%2F%2Fevil.example".to_owned(),
        long("a", 2047),
        long("é", 1023),
    ];
    let refused = [
        "//evil.example".to_owned(),
        "/\\evil.example".to_owned(),
        "/\t/evil.example".to_owned(),
        "/\n/evil.example".to_owned(),
        "/\r/evil.example".to_owned(),
        "/\t\\evil.example".to_owned(),
        "/\u{0}/evil.example".to_owned(),
        "/\u{7f}/evil.example".to_owned(),
        "/\u{85}/evil.example".to_owned(),
        "\t//evil.example".to_owned(),
        " /dashboard".to_owned(),
        "https://evil.example".to_owned(),
        "javascript:alert(1)".to_owned(),
        "dashboard".to_owned(),
        String::new(),
        long("a", 2048),
        long("é", 1024),
    ];
    let cases: Vec<String> = honoured.iter().chain(&refused).cloned().collect();
    let answers = script_next(app, &cases).await;
    assert_eq!(answers.len(), cases.len());
    for (case, answer) in cases.iter().zip(&answers) {
        let expected = honoured.contains(case).then(|| case.clone());
        assert_eq!(answer, &expected, "localNext() for next={case:?}");
    }
}
