//! The development mailer: one complete JSON file per message, whatever the concurrency.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use keystead::mail::{FileMailer, MailMessage, Mailer};
use keystead::{Email, ManualClock};
use serde_json::Value;

fn message(subject: &str, action_url: Option<&str>) -> MailMessage {
    MailMessage {
        to: Email::parse("alice@example.com").unwrap(),
        subject: subject.to_owned(),
        text: format!("Open {}\nGrüße", action_url.unwrap_or("nothing")),
        action_url: action_url.map(str::to_owned),
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn each_message_is_one_json_file_with_exactly_the_four_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = FileMailer::new(dir.path().join("var/mail")).unwrap();
    let url = "https://acme.test/auth/verify-email?token=abc";
    mailer.send(&message("Verify", Some(url))).await.unwrap();

    let files = json_files(mailer.dir());
    assert_eq!(files.len(), 1);
    let json = read_json(&files[0]);
    let object = json.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["action_url", "subject", "text", "to"]);
    assert_eq!(json["to"], "alice@example.com");
    assert_eq!(json["subject"], "Verify");
    assert_eq!(json["text"], format!("Open {url}\nGrüße"));
    assert_eq!(json["action_url"], url);
}

#[tokio::test]
async fn a_message_without_link_has_a_null_action_url() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = FileMailer::new(dir.path()).unwrap();
    mailer.send(&message("Hello", None)).await.unwrap();
    let json = read_json(&json_files(dir.path())[0]);
    assert!(json.as_object().unwrap().contains_key("action_url"));
    assert_eq!(json["action_url"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sends_at_the_same_instant_make_fifty_files() {
    let dir = tempfile::tempdir().unwrap();
    // A stopped clock: every name gets the same time prefix, so only the rest keeps them apart.
    let clock = Arc::new(ManualClock::starting_now());
    let mailer = Arc::new(FileMailer::with_clock(dir.path(), clock).unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let mailer = Arc::clone(&mailer);
            tokio::spawn(async move { mailer.send(&message(&format!("m{i}"), None)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let files = json_files(dir.path());
    assert_eq!(files.len(), 50);
    let subjects: HashSet<String> = files
        .iter()
        .map(|f| read_json(f)["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subjects.len(), 50, "every message kept its own file");
    let all = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(all, 50, "no temporary file is left behind");
}

#[tokio::test]
async fn files_sort_in_the_order_the_messages_were_sent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let mailer = FileMailer::with_clock(dir.path(), clock.clone()).unwrap();
    for i in 0..12 {
        mailer.send(&message(&format!("{i}"), None)).await.unwrap();
        clock.advance(time::Duration::microseconds(1));
    }
    let order: Vec<String> = json_files(dir.path())
        .iter()
        .map(|f| read_json(f)["subject"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    assert_eq!(order, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_polling_the_directory_never_sees_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = Arc::new(FileMailer::new(dir.path()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let parsed = Arc::new(AtomicUsize::new(0));

    let reader = {
        let (dir, done, parsed) = (dir.path().to_owned(), done.clone(), parsed.clone());
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                for file in json_files(&dir) {
                    let bytes = std::fs::read(&file).unwrap();
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(v) if v["text"].as_str().is_some_and(|t| t.len() > 400_000) => {
                            parsed.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => bad.push((file, bytes.len())),
                    }
                }
                if finished {
                    return bad;
                }
            }
        })
    };

    // Large bodies make a non-atomic write observable.
    let big = "x".repeat(500_000);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let mailer = Arc::clone(&mailer);
            let mut m = message(&format!("m{i}"), Some("https://acme.test/r?token=t"));
            m.text = big.clone();
            tokio::spawn(async move { mailer.send(&m).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let bad = reader.join().unwrap();
    assert!(bad.is_empty(), "partial files seen: {bad:?}");
    assert!(
        parsed.load(Ordering::Relaxed) >= 50,
        "the reader read every file at least once"
    );
    assert_eq!(json_files(dir.path()).len(), 50);
}
