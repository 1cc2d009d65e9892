//! Starts the built `axum-minimal` as a real process on a random port, with its data in a
//! fresh directory, and drives it over HTTP: the protected route refuses a stranger, sign-up
//! gives a session cookie, the cookie reaches the protected route, a verification mail is
//! written.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn sign_up_then_reach_the_protected_route() {
    let data = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-minimal"))
        .env("BIND", "127.0.0.1:0")
        .env("DATA_DIR", data.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start axum-minimal");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the app starts within a minute")
        .expect("read stdout")
        .expect("a line on stdout");
    let base = line
        .strip_prefix("listening on ")
        .expect("the app says where it listens")
        .to_owned();
    let http = reqwest::Client::new();

    let stranger = http
        .get(format!("{base}/me"))
        .send()
        .await
        .expect("GET /me");
    assert_eq!(stranger.status(), 401);

    let sign_up = http
        .post(format!("{base}/auth/sign-up"))
        .header("content-type", "application/json")
        .header("origin", &base)
        .body(r#"{"email":"ada@example.com","password":"correct horse battery staple"}"#)
        .send()
        .await
        .expect("POST /auth/sign-up");
    assert_eq!(sign_up.status(), 201);
    let cookies: Vec<String> = sign_up
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    assert!(!cookies.is_empty(), "sign-up sets a session cookie");

    let me = http
        .get(format!("{base}/me"))
        .header("cookie", cookies.join("; "))
        .send()
        .await
        .expect("GET /me with the cookie");
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.text().await.expect("body"),
        "signed in as ada@example.com"
    );

    // The verification mail, as a JSON file (it may be written just after the answer).
    let mail_dir = data.path().join("mail");
    let mut mails = 0;
    for _ in 0..100 {
        mails = std::fs::read_dir(&mail_dir)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0);
        if mails > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mails, 1, "one verification mail in {}", mail_dir.display());
}
