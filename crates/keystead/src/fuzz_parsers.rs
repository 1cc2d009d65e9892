//! Property tests of every parser that reads request bytes: the `Cookie` header, the Bearer
//! token of `Authorization`, `Origin` and `Referer` (and the CSRF decision on them), `next`
//! ([`local_path`]), stored password hashes (PHC strings and bcrypt), and the JSON bodies of the
//! contract. Each property says more than "no panic" where there is more to say.
//!
//! A short run is part of `cargo test` (and so of `cargo xtask test`): [`DEFAULT_CASES`] random
//! cases a property, or `PROPTEST_CASES`. `cargo xtask fuzz [SECONDS]` runs the same
//! properties for a time budget: with `AUTHKIT_FUZZ_SECONDS` set, each property runs rounds of
//! fresh random cases until its share of the budget is spent, and prints how many it ran.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::auth::bearer_token;
use crate::password::{PasswordConfig, PasswordError, PasswordHasher, Verified};
use crate::routes::{local_path, parse_each_body};
use crate::secret::SecretString;
use crate::web::{AppOrigin, CookiePolicy, CsrfPolicy, CsrfRequest, is_plausible_token};
use crate::{AuthError, ErrorCode};

/// Random cases a property runs in a plain `cargo test`.
const DEFAULT_CASES: u32 = 64;

/// Runs `test` over values of `strategy`: [`DEFAULT_CASES`] (or `PROPTEST_CASES`) once, or,
/// with `AUTHKIT_FUZZ_SECONDS`, rounds of fresh random cases until that many seconds passed.
/// Prints what it ran. A failure panics with the shrunk input.
fn check<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let budget = std::env::var("AUTHKIT_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let started = Instant::now();
    let mut total = 0_u64;
    loop {
        // A new runner, so a new random seed, each round.
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(failure) = runner.run(&strategy, &test) {
            panic!("{name}: {failure}");
        }
        total += u64::from(cases);
        if budget.is_none_or(|budget| started.elapsed() >= budget) {
            break;
        }
    }
    eprintln!(
        "fuzz {name}: {total} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// `Cookie`

/// A token as `generate_token` makes them: 43 base64url characters.
fn plausible_token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{43}"
}

/// A cookie value: a token, a near-token, junk (no `;`, which ends a pair), or nothing.
fn cookie_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => plausible_token(),
        1 => "[A-Za-z0-9_-]{42,44}",
        1 => "[^;]{0,50}",
        1 => Just(String::new()),
    ]
}

/// A cookie name: ours on http or https, near misses, others.
fn cookie_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("authkit_session".to_owned()),
        2 => Just("__Host-authkit_session".to_owned()),
        1 => Just("authkit_sessionx".to_owned()),
        1 => Just("Authkit_session".to_owned()),
        1 => Just("authkit_oauth".to_owned()),
        1 => "[a-z_]{1,12}",
    ]
}

/// A `Cookie` header made of pairs (some without `=`), white space around names, values and
/// separators.
fn cookie_header() -> impl Strategy<Value = String> {
    let ws = "[ \t]{0,2}";
    let pair = (ws, cookie_name(), ws, any::<bool>(), ws, cookie_value(), ws).prop_map(
        |(a, name, b, eq, c, value, d)| {
            if eq {
                format!("{a}{name}{b}={c}{value}{d}")
            } else {
                format!("{a}{name}{d}")
            }
        },
    );
    prop::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join(";"))
}

/// The rule of the `Cookie` reader, written the plain way (split, trim, compare), to compare
/// the one-pass byte scanner against: the plausible values under `name`; `None` when there are
/// none or two different ones.
fn reference_token<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let ws: &[char] = &[' ', '\t'];
    let mut found = None;
    for pair in header.split(';') {
        let Some((n, v)) = pair.split_once('=') else {
            continue;
        };
        if n.trim_matches(ws) != name {
            continue;
        }
        let v = v.trim_matches(ws);
        if !is_plausible_token(v) {
            continue;
        }
        match found {
            None => found = Some(v),
            Some(first) if first == v => {}
            Some(_) => return None,
        }
    }
    found
}

fn policies() -> [CookiePolicy; 2] {
    [
        CookiePolicy::for_origin(&AppOrigin::parse("http://localhost:3000").expect("origin")),
        CookiePolicy::for_origin(&AppOrigin::parse("https://app.example").expect("origin")),
    ]
}

#[test]
fn cookie_header_reads_as_the_plain_rule_does() {
    let strategy = prop_oneof![cookie_header(), any::<String>()];
    check("cookie header", strategy, |header| {
        for policy in policies() {
            let name = policy.session_cookie_name();
            let token = policy.session_token(&header);
            prop_assert_eq!(token, reference_token(&header, name), "{}", name);
            if let Some(token) = token {
                prop_assert!(is_plausible_token(token));
                prop_assert!(policy.has_session_cookie(&header));
            }
            prop_assert_eq!(
                policy.oauth_token(&header),
                reference_token(&header, policy.oauth_cookie_name())
            );
        }
        Ok(())
    });
}

#[test]
fn session_cookie_round_trips_among_other_cookies() {
    let strategy = (plausible_token(), cookie_header(), cookie_header());
    check("cookie round trip", strategy, |(token, before, after)| {
        for policy in policies() {
            let name = policy.session_cookie_name();
            // Other cookies around ours, without another plausible value under our name.
            let clean = |h: &str| {
                h.split(';')
                    .filter(|p| reference_token(p, name).is_none())
                    .collect::<Vec<_>>()
                    .join(";")
            };
            let set_cookie =
                policy.session_cookie(&SecretString::new(token.clone()), time::Duration::days(1));
            // What the browser sends back: the `name=value` of the `Set-Cookie`.
            let pair = set_cookie.split(';').next().unwrap_or_default();
            let header = format!("{}; {pair}; {}", clean(&before), clean(&after));
            prop_assert_eq!(policy.session_token(&header), Some(token.as_str()));
            // The same token twice is still one token; another one beside it is none.
            let twice = format!("{header}; {pair}");
            prop_assert_eq!(policy.session_token(&twice), Some(token.as_str()));
            let other: String = token.chars().rev().collect();
            if other != token {
                let both = format!("{header}; {name}={other}");
                prop_assert_eq!(policy.session_token(&both), None);
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// `Authorization: Bearer`

#[test]
fn bearer_token_extraction_never_widens_the_token() {
    let scheme = prop_oneof![
        Just("Bearer".to_owned()),
        "[bB][eE][aA][rR][eE][rR]",
        "[A-Za-z]{0,8}",
    ];
    let structured = (scheme, "[ \t]{0,3}", ".{0,60}", "[ \t]{0,3}")
        .prop_map(|(s, a, t, b)| format!("{s} {a}{t}{b}").into_bytes());
    let strategy = prop_oneof![structured, prop::collection::vec(any::<u8>(), 0..80)];
    check("bearer token", strategy, |value| {
        let Some(token) = bearer_token(&value) else {
            // Only a value whose scheme (up to the first space) is not `bearer` is no token.
            let space = value.iter().position(|b| *b == b' ');
            prop_assert!(space.is_none_or(|at| !value[..at].eq_ignore_ascii_case(b"bearer")));
            return Ok(());
        };
        let space = value.iter().position(|b| *b == b' ').expect("a space");
        prop_assert!(value[..space].eq_ignore_ascii_case(b"bearer"));
        // The token is the rest, trimmed of SP and HTAB only.
        let rest = &value[space + 1..];
        let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
        prop_assert!(token.first().is_none_or(|b| !is_ws(b)));
        prop_assert!(token.last().is_none_or(|b| !is_ws(b)));
        let trimmed: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(is_ws)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .skip_while(is_ws)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        prop_assert_eq!(token, trimmed.as_slice());
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// `Origin`, `Referer`, and the CSRF decision

/// Text shaped like an origin or URL: schemes, hosts, ports, user info, paths, junk.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("http://"),
        Just("https://"),
        Just("HTTPS://"),
        Just("ftp://"),
        Just("//"),
        Just("")
    ];
    let host = prop_oneof![
        Just("localhost".to_owned()),
        Just("app.example".to_owned()),
        Just("[::1]".to_owned()),
        Just("127.0.0.1".to_owned()),
        "[a-zA-Z0-9.@:\\[\\]-]{0,20}",
    ];
    let port = prop_oneof![
        Just(String::new()),
        Just(":3000".to_owned()),
        Just(":443".to_owned()),
        Just(":99999999999999999999".to_owned()),
        ":[0-9]{0,6}",
    ];
    let rest = prop_oneof![Just(String::new()), Just("/".to_owned()), "[/?#@].{0,20}"];
    let shaped = (scheme, host, port, rest).prop_map(|(s, h, p, r)| format!("{s}{h}{p}{r}"));
    prop_oneof![3 => shaped, 1 => any::<String>()]
}

#[test]
fn origins_parse_to_themselves() {
    check("origin parsing", url_like(), |input| {
        if let Ok(origin) = AppOrigin::parse(&input) {
            let text = origin.as_str();
            prop_assert!(text.starts_with("http://") || text.starts_with("https://"));
            prop_assert!(!text.ends_with('/'));
            prop_assert_eq!(AppOrigin::parse(text).ok(), Some(origin.clone()));
            prop_assert_eq!(AppOrigin::of_url(text).ok(), Some(origin.clone()));
        }
        if let Ok(origin) = AppOrigin::of_url(&input) {
            prop_assert_eq!(AppOrigin::parse(origin.as_str()).ok(), Some(origin));
        }
        Ok(())
    });
}

#[test]
fn a_referer_is_on_its_origin_whatever_its_path() {
    let strategy = (url_like(), "[/?#].{0,40}");
    check("referer paths", strategy, |(input, path)| {
        if let Ok(origin) = AppOrigin::parse(&input) {
            let url = format!("{}{path}", origin.as_str());
            prop_assert_eq!(AppOrigin::of_url(&url).ok(), Some(origin), "{}", url);
        }
        Ok(())
    });
}

#[test]
fn csrf_accepts_exactly_the_app_origin() {
    let app = AppOrigin::parse("http://localhost:3000").expect("origin");
    let policy = CsrfPolicy::new(app.clone());
    let near =
        "[a-zA-Z0-9.:@/_-]{1,10}".prop_map(|suffix| format!("http://localhost:3000{suffix}"));
    let strategy = (
        prop_oneof![url_like(), near, Just(app.as_str().to_owned())],
        any::<bool>(),
        any::<bool>(),
    );
    check("csrf origin", strategy, |(origin, login, referer)| {
        let request = if referer {
            CsrfRequest {
                method: "POST",
                referer: Some(&origin),
                has_session_cookie: true,
                login,
                ..CsrfRequest::default()
            }
        } else {
            CsrfRequest {
                method: "POST",
                origin: Some(&origin),
                has_session_cookie: true,
                login,
                ..CsrfRequest::default()
            }
        };
        let accepted = policy.evaluate(&request).is_ok();
        let expected = if referer {
            AppOrigin::of_url(&origin).is_ok_and(|o| o == app)
        } else {
            AppOrigin::parse(&origin).is_ok_and(|o| o == app)
        };
        prop_assert_eq!(accepted, expected, "{:?}", request);
        // A longer host or another port is never the app's origin.
        if !referer
            && let Some(rest) = origin.strip_prefix(app.as_str())
            && rest.trim() != "/"
            && !rest.trim().is_empty()
        {
            prop_assert!(!accepted, "{}", origin);
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// `next`

/// What a browser's URL parser does to a path before reading it: drop every ASCII tab and
/// newline, and strip leading and trailing C0 controls and spaces.
fn as_a_browser_reads_it(path: &str) -> String {
    path.chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect::<String>()
        .trim_matches(|c: char| c <= ' ')
        .to_owned()
}

#[test]
fn next_is_always_a_path_on_this_site() {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("\t".to_owned()),
        Just("\n".to_owned()),
        Just("\r".to_owned()),
        Just(" ".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\u{85}".to_owned()),
        Just(":".to_owned()),
        Just("%2F".to_owned()),
        Just("evil.example".to_owned()),
        "[a-z0-9?#=&.]{1,6}",
    ];
    let shaped = prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat());
    let strategy = prop_oneof![3 => shaped, 1 => any::<String>(), 1 => ".{2040,2060}"];
    check("next (local_path)", strategy, |next| {
        let Some(path) = local_path(&next) else {
            return Ok(());
        };
        prop_assert_eq!(path, next.as_str());
        prop_assert!(path.len() <= 2048);
        prop_assert!(!path.chars().any(char::is_control));
        // Also after a browser cleaned it up: one leading '/', never "//" or "/\".
        for seen in [path.to_owned(), as_a_browser_reads_it(path)] {
            prop_assert!(seen.starts_with('/'), "{:?}", seen);
            prop_assert!(
                !seen.starts_with("//") && !seen.starts_with("/\\"),
                "{:?}",
                seen
            );
            prop_assert!(!seen.contains('\\'), "{:?}", seen);
        }
        Ok(())
    });
}

#[test]
fn a_plain_path_is_kept() {
    check(
        "next plain paths",
        "/[a-zA-Z0-9._~!$&'()*+,;=:@%?#-]{0,100}",
        |path| {
            prop_assume!(!path.starts_with("//"));
            prop_assert_eq!(local_path(&path), Some(path.as_str()));
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Stored password hashes

/// A hasher with cheap new hashes and tight verification limits, so any hash the parser
/// accepts is quick to check.
fn hasher() -> PasswordHasher {
    PasswordHasher::new(
        PasswordConfig::new()
            .argon2_params(8, 1, 1)
            .expect("valid params")
            .max_verify_memory_kib(64)
            .max_verify_iterations(2)
            .max_verify_parallelism(2)
            .max_verify_bcrypt_cost(4),
    )
}

/// Numbers as a hash's parameters may spell them: small, absurd, negative, not numbers.
fn param() -> impl Strategy<Value = String> {
    prop_oneof![
        (0_u64..80).prop_map(|n| n.to_string()),
        Just(u32::MAX.to_string()),
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("1e9".to_owned()),
        Just(String::new()),
        "[0-9a-z]{1,4}",
    ]
}

fn b64() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{0,90}"
}

/// PHC strings (argon2 and others), bcrypt strings, and junk.
fn stored_hash() -> impl Strategy<Value = String> {
    let variant = prop_oneof![
        Just("argon2id"),
        Just("argon2i"),
        Just("argon2d"),
        Just("argon2x"),
        Just("scrypt")
    ];
    let argon2 = (
        variant,
        prop_oneof![Just("v=19$"), Just("v=16$"), Just(""), Just("v=99$")],
        param(),
        param(),
        param(),
        prop_oneof![Just(String::new()), Just(",keyid=AAAA".to_owned())],
        b64(),
        b64(),
    )
        .prop_map(|(v, version, m, t, p, extra, salt, hash)| {
            format!("${v}${version}m={m},t={t},p={p}{extra}${salt}${hash}")
        });
    let bcrypt = (
        prop_oneof![Just("2a"), Just("2b"), Just("2y"), Just("2x"), Just("2")],
        param(),
        "[./A-Za-z0-9]{0,60}",
    )
        .prop_map(|(v, cost, rest)| format!("${v}${cost}${rest}"));
    prop_oneof![3 => argon2, 2 => bcrypt, 1 => any::<String>()]
}

#[test]
fn stored_hashes_are_verified_or_refused_never_trusted() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let hasher = hasher();
    let strategy = (stored_hash(), ".{0,20}");
    check(
        "password hashes (PHC, bcrypt)",
        strategy,
        |(hash, password)| {
            let result = runtime.block_on(hasher.verify(
                &SecretString::new(password),
                &SecretString::new(hash.clone()),
            ));
            match &result {
                // Random bytes never match a password.
                Ok(Verified::Invalid)
                | Err(
                    PasswordError::UnsupportedHash { .. } | PasswordError::HashTooCostly { .. },
                ) => {}
                other => prop_assert!(false, "{hash:?}: {other:?}"),
            }
            // Past the limits nothing is computed: the answer says so.
            if let Some(m) = hash
                .strip_prefix("$argon2id$v=19$m=")
                .and_then(|rest| rest.split(',').next())
                .and_then(|m| m.parse::<u64>().ok())
                && m > 64
                && !matches!(result, Err(PasswordError::UnsupportedHash { .. }))
            {
                prop_assert!(
                    matches!(result, Err(PasswordError::HashTooCostly { .. })),
                    "{hash:?}: {result:?}"
                );
            }
            Ok(())
        },
    );
}

#[test]
fn a_hash_verifies_its_password_and_no_other() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let hasher = hasher();
    check(
        "password hash round trip",
        (".{1,40}", ".{1,40}"),
        |(password, other)| {
            let password = SecretString::new(password);
            let hash = runtime.block_on(hasher.hash(&password)).expect("hashed");
            prop_assert!(hash.expose().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
            let verified = runtime.block_on(hasher.verify(&password, &hash));
            prop_assert_eq!(
                verified.ok(),
                Some(Verified::Valid {
                    needs_rehash: false
                })
            );
            if other != password.expose() {
                let verified = runtime.block_on(hasher.verify(&SecretString::new(other), &hash));
                prop_assert_eq!(verified.ok(), Some(Verified::Invalid));
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// JSON bodies

/// Every body's answer is `Ok` or 400 `invalid_request`, nothing else.
fn only_invalid_request(answers: &[(&str, Result<(), AuthError>)]) -> Result<(), TestCaseError> {
    for (route, answer) in answers {
        if let Err(err) = answer {
            prop_assert_eq!(err.code, ErrorCode::InvalidRequest, "{}", route);
        }
    }
    Ok(())
}

/// Any JSON value, nested.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The field names of the contract's bodies, and others.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "email", "password", "name", "token", "current_password", "new_password", "org_id",
            "role", "user_id", "scopes", "expires_in_days",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
    ]
}

#[test]
fn json_bodies_parse_or_are_invalid_requests() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| serde_json::to_vec(&v).expect("serializes")),
        // Deep nesting: serde_json's recursion limit answers, the stack does not overflow.
        (1_usize..5000).prop_map(|depth| {
            let mut body = "{\"name\":".to_owned();
            body.push_str(&"[".repeat(depth));
            body.into_bytes()
        }),
    ];
    check("JSON bodies (bytes)", bytes, |body| {
        let answers = parse_each_body(&body);
        only_invalid_request(&answers)?;
        // Only a JSON object can be a body.
        let object = matches!(
            serde_json::from_slice::<serde_json::Value>(&body),
            Ok(serde_json::Value::Object(_))
        );
        if !object {
            for (route, answer) in &answers {
                prop_assert!(
                    answer.is_err(),
                    "{} took {:?}",
                    route,
                    String::from_utf8_lossy(&body)
                );
            }
        }
        Ok(())
    });
}

#[test]
fn well_typed_json_bodies_parse_and_mistyped_fields_are_refused() {
    let text = ".{0,30}";
    let strategy = (
        text,
        text,
        text,
        prop::collection::vec(text, 0..4),
        1_i64..=100_000,
        json_value(),
        prop::sample::select(vec![
            "email",
            "password",
            "token",
            "current_password",
            "new_password",
            "role",
            "user_id",
            "scopes",
            "expires_in_days",
        ]),
    );
    check(
        "JSON bodies (typed)",
        strategy,
        |(a, b, c, scopes, days, junk, field)| {
            let mut body = serde_json::json!({
                "email": a, "password": b, "name": c, "token": a, "current_password": b,
                "new_password": c, "org_id": a, "role": b, "user_id": c, "scopes": scopes,
                "expires_in_days": days,
            });
            let answers = parse_each_body(&serde_json::to_vec(&body).expect("serializes"));
            for (route, answer) in &answers {
                prop_assert!(answer.is_ok(), "{}: {:?}", route, answer);
            }
            // One required field of another type: the bodies that have it refuse it.
            let expected_string = field != "scopes" && field != "expires_in_days";
            let mistyped = match &junk {
                serde_json::Value::String(_) => !expected_string,
                serde_json::Value::Array(items) => {
                    expected_string || !items.iter().all(serde_json::Value::is_string)
                }
                serde_json::Value::Number(n) => {
                    expected_string || !n.as_i64().is_some_and(|d| (1..=100_000).contains(&d))
                }
                _ => true,
            };
            body[field] = junk;
            let answers = parse_each_body(&serde_json::to_vec(&body).expect("serializes"));
            only_invalid_request(&answers)?;
            if mistyped {
                prop_assert!(
                    answers.iter().any(|(_, a)| a.is_err()),
                    "{}: {}",
                    field,
                    body
                );
            }
            Ok(())
        },
    );
}
