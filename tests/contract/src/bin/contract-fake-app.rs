//! A stand-in app for the suite's own tests of its harness (`tests/harness.rs`): it starts the
//! way an example app does and serves just enough to check that `AppUnderTest` passes the
//! right environment, drains the app's output, reads its mail and tears it down. It serves
//! none of the contract.
//!
//! - `GET /env`: the variables the harness sets, as JSON.
//! - `GET /mail?to=EMAIL`: 202, and 300 ms later a mail file to `EMAIL` in `AUTH_MAIL_DIR`,
//!   written the way the development mailer does (hidden temporary file, then rename).
//! - `GET /noise`: writes 1 MiB to stdout and to stderr, then answers 200 (it would hang if the
//!   harness stopped reading the pipes).
//! - `FAKE_APP_FAIL=message` in the environment: prints the message to stderr and exits 3
//!   without listening.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static MAILS: AtomicU64 = AtomicU64::new(0);

fn main() -> ExitCode {
    if let Ok(message) = std::env::var("FAKE_APP_FAIL") {
        eprintln!("fake app refuses to start: {message}");
        return ExitCode::from(3);
    }
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = match TcpListener::bind(&bind) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot bind {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("a bound address");
    println!("starting");
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(&stream, &format!("http://{addr}")));
    }
    ExitCode::SUCCESS
}

fn serve(stream: &TcpStream, origin: &str) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers: the fake serves bodiless requests only.
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, body) = match path {
        "/env" => {
            let var = |name: &str| std::env::var(name).ok();
            let body = serde_json::json!({
                "DATABASE_URL": var("DATABASE_URL"),
                "BIND": var("BIND"),
                "APP_ORIGIN": var("APP_ORIGIN"),
                "AUTH_MAIL_DIR": var("AUTH_MAIL_DIR"),
                "AUTH_KEYS": var("AUTH_KEYS"),
                "RUST_LOG": var("RUST_LOG"),
                "EXTRA": var("FAKE_APP_EXTRA"),
                "cwd": std::env::current_dir().ok(),
            });
            ("200 OK", body.to_string())
        }
        "/mail" => {
            let to = query
                .strip_prefix("to=")
                .unwrap_or("nobody@example.com")
                .to_owned();
            let origin = origin.to_owned();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                write_mail(&to, &origin);
            });
            ("202 Accepted", "{}".to_owned())
        }
        "/noise" => {
            let line = format!("{}\n", "noise ".repeat(16));
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            for _ in 0..(1024 * 1024 / line.len()) {
                let _ = out.write_all(line.as_bytes());
                let _ = err.write_all(line.as_bytes());
            }
            let _ = out.flush();
            ("200 OK", "{}".to_owned())
        }
        _ => ("404 Not Found", "{}".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
}

fn write_mail(to: &str, origin: &str) {
    let Some(dir) = std::env::var_os("AUTH_MAIL_DIR").map(PathBuf::from) else {
        return;
    };
    let _ = std::fs::create_dir_all(&dir);
    let n = MAILS.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let name = format!("{micros:020}-{n}.json");
    let link = format!("{origin}/auth/verify-email?token=fake-token-{n}");
    let body = serde_json::json!({
        "to": to,
        "subject": "Verify your email",
        "text": format!("Open {link}"),
        "action_url": link,
    });
    let temp = dir.join(format!(".{name}.tmp"));
    if std::fs::write(&temp, body.to_string()).is_ok() {
        let _ = std::fs::rename(&temp, dir.join(name));
    }
}
