//! The page script's `next` rule (`localPath` and `localNext` in `static/app.js`) is the
//! server's (`keystead::local_path`): node runs the script over a table of inputs, hand-picked
//! and generated, and each answer must be the Rust function's.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `static/app.js` in node with the browser objects it reads stubbed, and answers, for
/// each case, `[localPath(case), localNext() with ?next=case]`.
const HARNESS: &str = r#"
const fs = require("fs");
const vm = require("vm");
const source = fs.readFileSync(process.argv[1], "utf8");
const context = { document: { addEventListener() {} }, location: { search: "" }, URLSearchParams, TextEncoder };
vm.createContext(context);
vm.runInContext(source, context);
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const out = cases.map((next) => {
  context.next = next;
  const direct = vm.runInContext("localPath(next)", context);
  context.location.search = "?next=" + encodeURIComponent(next);
  const fromQuery = vm.runInContext("localNext()", context);
  return [direct, fromQuery];
});
process.stdout.write(JSON.stringify(out));
"#;

fn run_script(cases: &[String]) -> Vec<(Option<String>, Option<String>)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/static/app.js");
    let mut child = Command::new("node")
        .arg("-e")
        .arg(HARNESS)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (this test needs node on PATH)");
    let input = serde_json::to_vec(cases).expect("cases serialize");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write the cases");
    let output = child.wait_with_output().expect("node finishes");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("node answers a JSON array")
}

/// The hand-picked cases: the attacks on a redirect target, and paths that must work.
fn table() -> Vec<String> {
    let long = |unit: &str, n: usize| format!("/{}", unit.repeat(n));
    let mut cases: Vec<String> = [
        "/dashboard",
        "/dashboard/tokens?tab=a b&x=é",
        "/a?next=//evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/..//evil.example",
        "/",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        "/\t\\evil.example",
        "\t//evil.example",
        "/\u{0}/evil.example",
        "/\u{1f}/evil.example",
        "/\u{7f}/evil.example",
        "/\u{85}/evil.example",
        "/\u{9f}/evil.example",
        "/\u{a0}/evil.example",
        "/\u{2028}/evil.example",
        "/\u{feff}/evil.example",
        " /dashboard",
        "https://evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "dashboard",
        "",
        "/😀",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for n in [2046, 2047, 2048, 2049] {
        cases.push(long("a", n));
    }
    for n in [1022, 1023, 1024] {
        cases.push(long("é", n));
    }
    for n in [511, 512] {
        cases.push(long("😀", n));
    }
    cases
}

/// Strings over an alphabet of the characters that matter to the rule, from a fixed seed.
fn generated(count: usize) -> Vec<String> {
    const ALPHABET: &[char] = &[
        '/', '/', '/', '\\', '\t', '\n', '\r', ' ', 'a', '.', ':', '%', '?', '#', '@', 'é',
        '\u{0}', '\u{1f}', '\u{7f}', '\u{80}', '\u{9f}', '\u{a0}', '\u{2028}', '😀',
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = (next() % 10) as usize;
            // Half of them start as a path does.
            let lead = if next() % 2 == 0 { "/" } else { "" };
            let rest: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            format!("{lead}{rest}")
        })
        .collect()
}

#[test]
fn the_page_script_and_the_server_share_one_next_rule() {
    let mut cases = table();
    cases.extend(generated(5000));
    let answers = run_script(&cases);
    assert_eq!(answers.len(), cases.len());
    let mut honoured = 0;
    for (case, (direct, from_query)) in cases.iter().zip(answers) {
        let rust = keystead::routes::local_path(case).map(str::to_owned);
        honoured += usize::from(rust.is_some());
        assert_eq!(direct, rust, "localPath({case:?})");
        assert_eq!(from_query, rust, "localNext() with next={case:?}");
    }
    // The table exercises both answers.
    assert!(honoured > 100 && honoured < cases.len() - 100, "{honoured}");
}
