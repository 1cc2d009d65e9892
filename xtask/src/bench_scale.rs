//! `cargo xtask bench-scale [--users N] [--sample N] [--skip-hot] [--keep]`: the example
//! app's auth on a Postgres database of N users (default 1,000,000), 10 sessions a user, one
//! API token a user (one in ten revoked), one organization per 10 users (its first user owner,
//! the others members), measured as docs/benchmarks.md reports it.
//!
//! 1. A fresh database; `load-target-axum` (release) started on it once runs the migrations
//!    and makes the signing key (that start is timed too: the empty database's start-up).
//! 2. `benches/load.sh axum postgres` against it (the hot path on the empty database).
//! 3. The fill: a few `INSERT … SELECT … FROM generate_series` statements, foreign-key
//!    triggers off for the session (`session_replication_role = replica`: the rows are made
//!    consistent by construction), then `VACUUM (ANALYZE)`. Every row is usable: session `s`
//!    holds the SHA-256 of the cookie `base64url(SHA-256(seed ‖ s))` (43 characters, as
//!    `generate_token` makes them), so the cookie of any session can be worked out from the
//!    run's random seed; token rows are metadata only, and the sampled tokens are signed here
//!    with the app's Ed25519 key (`AUTH_KEYS`), claims as `ApiTokens::issue` makes them.
//! 4. The server started on the filled database: time to `listening on`, resident memory
//!    after start, after the first Bearer request (which loads the revocation list: all
//!    revoked tokens unexpired, the worst case) and after the cold run.
//! 5. The cold path: one request `GET /api/projects` per sampled session (cookie) and per
//!    sampled token (Bearer), each its first, none cached, sent one after another over one
//!    keep-alive connection by the small HTTP/1.1 client below; p50, p90, p99, max.
//! 6. `benches/load.sh` again (the hot path on the filled database).
//! 7. The size of every table and index; `EXPLAIN (ANALYZE, BUFFERS)` of each query of the
//!    cold path, which must use an index (the step fails otherwise).
//! 8. The database is dropped (kept with `--keep`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};

use crate::{cargo, json_string_field, step, workspace_root};

/// Users when not told.
const DEFAULT_USERS: u64 = 1_000_000;
/// Sessions and tokens sampled for the cold path when not told.
const DEFAULT_SAMPLE: u64 = 10_000;
/// The app's origin in these runs: the tokens signed here name it as `iss` and `aud`.
const ORIGIN: &str = "http://localhost:3000";
/// The library's Postgres schema (the example apps' default).
const SCHEMA: &str = "auth";

struct Options {
    users: u64,
    sample: u64,
    hot: bool,
    keep: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        users: DEFAULT_USERS,
        sample: DEFAULT_SAMPLE,
        hot: true,
        keep: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .ok_or_else(|| format!("{name} needs a number"))?
                .replace(['_', ','], "")
                .parse()
                .map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--users" => options.users = number("--users")?,
            "--sample" => options.sample = number("--sample")?,
            "--skip-hot" => options.hot = false,
            "--keep" => options.keep = true,
            other => return Err(format!("bench-scale: unknown argument {other}")),
        }
    }
    if options.users < 100 {
        return Err("--users: at least 100".into());
    }
    // Sampled tokens are every (users / sample)-th, a multiple of 10 so that none is revoked.
    options.sample = options.sample.clamp(1, options.users / 10);
    Ok(options)
}

/// Runs the benchmark and prints what docs/benchmarks.md records.
pub(crate) fn bench_scale(args: &[String], admin_url: &str) -> Result<(), String> {
    let options = options(args)?;
    let root = workspace_root();
    let target_dir =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    step("building load-target-axum (release)");
    run_status(
        "cargo build",
        Command::new(cargo())
            .current_dir(&root)
            .args(["build", "--release", "-p", "load-target", "--bin"])
            .arg("load-target-axum"),
    )?;
    let bin = target_dir.join("release/load-target-axum");
    let work = std::env::temp_dir().join(format!("keystead-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let name = format!("scalebench_{}", std::process::id());
    let db = Database::create(admin_url, &name, options.keep)?;
    let env = ServerEnv {
        bin,
        database_url: db.url.clone(),
        work: work.clone(),
    };

    step("first start on the empty database (runs the migrations, makes the signing key)");
    let first = Server::start(&env)?;
    println!(
        "start-up, empty database, with the migrations: {:.0} ms to `listening on`",
        ms(first.started)
    );
    drop(first);
    let empty = Server::start(&env)?;
    let empty_rss = rss_kib(empty.pid())?;
    println!(
        "start-up, empty database: {:.0} ms to `listening on`, RSS {} MiB",
        ms(empty.started),
        empty_rss / 1024
    );
    drop(empty);
    if options.hot {
        step("hot path on the empty database (benches/load.sh axum postgres)");
        load_sh(&root, &env)?;
    }

    let seed = random_hex(16)?;
    let fill_started = Instant::now();
    fill(&db, options.users, &seed)?;
    println!(
        "fill: {:.1} s in all, database {}",
        fill_started.elapsed().as_secs_f64(),
        db.scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")?
    );

    step("the sample: cookies of spread sessions, tokens signed with the app's key");
    let cookies = sample_cookies(&db, options.users, options.sample, &seed)?;
    let key = signing_key(&work.join("keys"))?;
    let tokens = sample_tokens(&db, options.users, options.sample, &key)?;
    let revoked = token_rows(&db, "WHERE a.id = bench_uuid(4, 10)")?
        .into_iter()
        .map(|row| row.sign(&key))
        .next()
        .ok_or("no revoked token row")?;

    step("start-up on the filled database and the cold path");
    println!("load average before: {}", load_average());
    let server = Server::start(&env)?;
    let started_ms = ms(server.started);
    let rss_start = rss_kib(server.pid())?;
    let mut http = Http::connect(&server.addr)?;
    let (first_bearer, status, _) = http.timed_get(&bearer(&tokens[0]))?;
    expect(status, 200, "the first Bearer request")?;
    let rss_revocations = rss_kib(server.pid())?;
    let (status, body) = http.get(&bearer(&revoked))?;
    expect(status, 401, "a revoked token")?;
    if !body.contains("token_revoked") {
        return Err(format!("a revoked token: {body}"));
    }
    let cookie_times = cold_run(&mut http, cookies.iter().map(|c| cookie(c)), "cookie")?;
    let token_times = cold_run(&mut http, tokens[1..].iter().map(|t| bearer(t)), "Bearer")?;
    let rss_cold = rss_kib(server.pid())?;
    println!("load average after the cold run: {}", load_average());
    let hwm = hwm_kib(server.pid())?;
    drop(http);
    drop(server);
    println!();
    println!(
        "| start-up on the filled database | {started_ms:.0} ms to `listening on` |\n\
         | RSS after start | {} MiB |\n\
         | first Bearer request (loads the revocation list of {} tokens) | {:.1} ms |\n\
         | RSS after it | {} MiB |\n\
         | RSS after the cold run ({} sessions, {} tokens) | {} MiB (peak {} MiB) |",
        rss_start / 1024,
        options.users / 10,
        ms(first_bearer),
        rss_revocations / 1024,
        cookie_times.len(),
        token_times.len() + 1,
        rss_cold / 1024,
        hwm / 1024
    );
    println!();
    println!("| cold path, first request of | n | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (what, times) in [
        ("a session (cookie)", cookie_times),
        ("an API token (Bearer)", token_times),
    ] {
        println!("{}", percentiles_row(what, times));
    }
    println!();

    if options.hot {
        step("hot path on the filled database (benches/load.sh axum postgres)");
        load_sh(&root, &env)?;
    }
    sizes(&db)?;
    explain(&db, &cookies[0], &tokens[0])?;
    drop(db);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures: how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn expect(status: u16, want: u16, what: &str) -> Result<(), String> {
    if status == want {
        Ok(())
    } else {
        Err(format!("{what}: HTTP {status}, expected {want}"))
    }
}

fn run_status(what: &str, command: &mut Command) -> Result<(), String> {
    match command.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("could not run {what}: {e}")),
    }
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0_u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The benchmark's database: dropped when this goes, unless kept.
struct Database {
    admin_url: String,
    name: String,
    url: String,
    keep: bool,
}

impl Database {
    fn create(admin_url: &str, name: &str, keep: bool) -> Result<Self, String> {
        psql(admin_url, &format!("CREATE DATABASE \"{name}\""))?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            url: format!("{base}/{name}"),
            keep,
        })
    }

    /// Runs SQL; returns psql's unaligned output (fields split by `|`).
    fn query(&self, sql: &str) -> Result<String, String> {
        psql(&self.url, sql)
    }

    fn scalar(&self, sql: &str) -> Result<String, String> {
        Ok(self.query(sql)?.trim().to_owned())
    }

    /// Runs a statement and prints how long it took.
    fn timed(&self, what: &str, sql: &str) -> Result<(), String> {
        let started = Instant::now();
        self.query(sql)?;
        println!("  {what}: {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept the database: {}", self.url);
            return;
        }
        if let Err(e) = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        ) {
            eprintln!("could not drop {}: {e}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .map(|mut stdin| stdin.write_all(sql.as_bytes()))
                .transpose()?;
            child.wait_with_output()
        })
        .map_err(|e| format!("could not run psql ({e}); install postgresql-client"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "psql failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            sql.chars().take(400).collect::<String>()
        ))
    }
}

/// Fills the database; prints each statement's time.
fn fill(db: &Database, users: u64, seed: &str) -> Result<(), String> {
    let orgs = users.div_ceil(10);
    let sessions = users * 10;
    step(&format!(
        "fill: {users} users, {orgs} organizations, {users} memberships, {sessions} sessions, \
         {users} API tokens ({} revoked)",
        users / 10
    ));
    // Ids are UUID v7 in layout (48 bits of milliseconds, then version and variant) and
    // distinct by construction: the milliseconds count up with the row number.
    db.query(
        "CREATE FUNCTION bench_uuid(kind int, i bigint) RETURNS uuid
           LANGUAGE sql IMMUTABLE PARALLEL SAFE
           AS $$ SELECT (lpad(to_hex(1700000000000 + i), 12, '0') || '7'
                         || lpad(to_hex(kind), 3, '0') || '8'
                         || substr(md5(kind::text || ':' || i::text), 1, 15))::uuid $$;
         CREATE FUNCTION bench_cookie(seed bytea, i bigint) RETURNS text
           LANGUAGE sql IMMUTABLE PARALLEL SAFE
           AS $$ SELECT translate(rtrim(encode(sha256(seed || int8send(i)), 'base64'), '='),
                                  '+/', '-_') $$;",
    )?;
    let fast = "SET session_replication_role = replica; SET maintenance_work_mem = '256MB';";
    db.timed(
        "users",
        &format!(
            "{fast} INSERT INTO {SCHEMA}.users (id, email, name, email_verified_at, created_at)
             SELECT bench_uuid(1, i), 'user' || i || '@example.com', 'User ' || i,
                    now() - interval '100 days', now() - interval '100 days'
             FROM generate_series(1, {users}) AS i"
        ),
    )?;
    db.timed(
        "organizations",
        &format!(
            "{fast} INSERT INTO {SCHEMA}.organizations (id, name, slug, created_at)
             SELECT bench_uuid(2, o), 'Org ' || o, 'org-' || o, now() - interval '100 days'
             FROM generate_series(1, {orgs}) AS o"
        ),
    )?;
    db.timed(
        "memberships",
        &format!(
            "{fast} INSERT INTO {SCHEMA}.memberships (org_id, user_id, role, joined_at)
             SELECT bench_uuid(2, (i - 1) / 10 + 1), bench_uuid(1, i),
                    CASE WHEN (i - 1) % 10 = 0 THEN 'owner' ELSE 'member' END,
                    now() - interval '100 days'
             FROM generate_series(1, {users}) AS i"
        ),
    )?;
    // Sessions in chunks of a million rows, to see progress.
    let chunk = 1_000_000_u64;
    let mut from = 1;
    while from <= sessions {
        let to = (from + chunk - 1).min(sessions);
        db.timed(
            &format!("sessions {from}..={to}"),
            &format!(
                "{fast} INSERT INTO {SCHEMA}.sessions (id, token_hash, user_id, created_at,
                    last_seen_at, expires_at, absolute_expires_at, active_org_id, user_agent, ip,
                    authenticated_at)
                 SELECT bench_uuid(3, s),
                        sha256(convert_to(bench_cookie('\\x{seed}'::bytea, s), 'UTF8')),
                        bench_uuid(1, (s - 1) / 10 + 1),
                        now() - interval '1 day', now() - interval '1 hour',
                        now() + interval '29 days', now() + interval '89 days',
                        bench_uuid(2, ((s - 1) / 10) / 10 + 1),
                        'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
                        '203.0.113.' || (s % 250),
                        now() - interval '1 day'
                 FROM generate_series({from}, {to}) AS s"
            ),
        )?;
        from = to + 1;
    }
    // Every token unexpired (created up to 29 days ago, for 90 days): the 10 % revoked are
    // the revocation list an instance loads, all of it.
    db.timed(
        "api_tokens",
        &format!(
            "{fast} INSERT INTO {SCHEMA}.api_tokens (id, name, user_id, org_id, scopes,
                created_by, created_at, expires_at, revoked_at)
             SELECT bench_uuid(4, t), 'token ' || t, bench_uuid(1, t),
                    bench_uuid(2, (t - 1) / 10 + 1), ARRAY['read:projects'], bench_uuid(1, t),
                    now() - (t % 30) * interval '1 day',
                    now() - (t % 30) * interval '1 day' + interval '90 days',
                    CASE WHEN t % 10 = 0 THEN now() - interval '1 hour' END
             FROM generate_series(1, {users}) AS t"
        ),
    )?;
    db.timed(
        "VACUUM (ANALYZE)",
        &format!(
            "VACUUM (ANALYZE) {SCHEMA}.users, {SCHEMA}.organizations, {SCHEMA}.memberships,
             {SCHEMA}.sessions, {SCHEMA}.api_tokens"
        ),
    )?;
    let counts = db.query(&format!(
        "SELECT (SELECT count(*) FROM {SCHEMA}.users), (SELECT count(*) FROM {SCHEMA}.sessions),
                (SELECT count(*) FROM {SCHEMA}.api_tokens),
                (SELECT count(*) FROM {SCHEMA}.api_tokens WHERE revoked_at IS NOT NULL),
                (SELECT count(*) FROM {SCHEMA}.organizations),
                (SELECT count(*) FROM {SCHEMA}.memberships)"
    ))?;
    println!(
        "  rows: users|sessions|tokens|revoked|orgs|memberships = {}",
        counts.trim()
    );
    Ok(())
}

/// Cookies of `sample` sessions spread evenly over the table.
fn sample_cookies(
    db: &Database,
    users: u64,
    sample: u64,
    seed: &str,
) -> Result<Vec<String>, String> {
    let every = users * 10 / sample;
    let out = db.query(&format!(
        "SELECT bench_cookie('\\x{seed}'::bytea, 1 + k * {every})
         FROM generate_series(0, {}) AS k ORDER BY k",
        sample - 1
    ))?;
    Ok(out.lines().map(str::to_owned).collect())
}

/// A token row, as its claims need it.
struct TokenRow {
    id: String,
    user_id: String,
    org_id: String,
    iat: i64,
    exp: i64,
}

impl TokenRow {
    /// The token `ApiTokens::issue` would have made for this row with `key`.
    fn sign(&self, key: &Key) -> String {
        let header = format!(r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{}"}}"#, key.kid);
        let claims = format!(
            r#"{{"sub":"{}","org":"{}","scopes":["read:projects"],"jti":"{}","iat":{},"exp":{},"iss":"{ORIGIN}","aud":"{ORIGIN}/api"}}"#,
            self.user_id, self.org_id, self.id, self.iat, self.exp
        );
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = key.key.sign(input.as_bytes());
        format!(
            "sk_live_{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

fn token_rows(db: &Database, filter: &str) -> Result<Vec<TokenRow>, String> {
    let out = db.query(&format!(
        "SELECT a.id, a.user_id, a.org_id, floor(extract(epoch FROM a.created_at))::bigint,
                floor(extract(epoch FROM a.expires_at))::bigint
         FROM {SCHEMA}.api_tokens AS a {filter}"
    ))?;
    out.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            let [id, user_id, org_id, iat, exp] = f[..] else {
                return Err(format!("unexpected token row: {line}"));
            };
            Ok(TokenRow {
                id: id.to_owned(),
                user_id: user_id.to_owned(),
                org_id: org_id.to_owned(),
                iat: iat.parse().map_err(|e| format!("iat {iat}: {e}"))?,
                exp: exp.parse().map_err(|e| format!("exp {exp}: {e}"))?,
            })
        })
        .collect()
}

/// `sample` unrevoked tokens spread evenly over the table, signed.
fn sample_tokens(db: &Database, users: u64, sample: u64, key: &Key) -> Result<Vec<String>, String> {
    // A multiple of 10 apart, from row 1: never a revoked row (every tenth, from row 10).
    let every = (users / sample / 10).max(1) * 10;
    let rows = token_rows(
        db,
        &format!(
            "JOIN generate_series(0, {}) AS k ON a.id = bench_uuid(4, 1 + k * {every}) ORDER BY k",
            sample - 1
        ),
    )?;
    if rows.len() as u64 != sample {
        return Err(format!("sampled {} token rows of {sample}", rows.len()));
    }
    Ok(rows.iter().map(|row| row.sign(key)).collect())
}

/// The app's signing key, read from its key directory.
struct Key {
    kid: String,
    key: SigningKey,
}

fn signing_key(dir: &Path) -> Result<Key, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if json_string_field(&text, "algorithm").as_deref() != Some("EdDSA") {
            continue;
        }
        let kid = json_string_field(&text, "kid").ok_or("a key without a kid")?;
        let secret = json_string_field(&text, "secret").ok_or("a key without a secret")?;
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|e| format!("the key's secret: {e}"))?
            .try_into()
            .map_err(|_| "the key's secret is not 32 bytes")?;
        return Ok(Key {
            kid,
            key: SigningKey::from_bytes(&seed),
        });
    }
    Err(format!("no EdDSA key in {}", dir.display()))
}

/// What every start of the server shares.
struct ServerEnv {
    bin: PathBuf,
    database_url: String,
    work: PathBuf,
}

/// A running `load-target-axum`, pinned to core 0 with one worker as `benches/load.sh` runs
/// it; killed when this goes.
struct Server {
    child: Child,
    addr: String,
    /// From spawning to the `listening on` line.
    started: Duration,
}

impl Server {
    fn start(env: &ServerEnv) -> Result<Self, String> {
        let log = std::fs::File::create(env.work.join("server.log")).map_err(|e| e.to_string())?;
        let started_at = Instant::now();
        let mut child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(&env.bin)
            .env("DATABASE_URL", &env.database_url)
            .env("BIND", "127.0.0.1:0")
            .env("APP_ORIGIN", ORIGIN)
            .env("AUTH_KEYS", env.work.join("keys"))
            .env("AUTH_MAIL_DIR", env.work.join("mail"))
            .env("TOKIO_WORKER_THREADS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", env.bin.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let started = started_at.elapsed();
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let log = std::fs::read_to_string(env.work.join("server.log")).unwrap_or_default();
            return Err(format!("the server did not start: {line:?}\n{log}"));
        };
        let addr = url.trim_start_matches("http://").to_owned();
        Ok(Self {
            child,
            addr,
            started,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    proc_status_kib(pid, "VmRSS:")
}

fn hwm_kib(pid: u32) -> Result<u64, String> {
    proc_status_kib(pid, "VmHWM:")
}

fn cookie(token: &str) -> String {
    format!("cookie: authkit_session={token}")
}

fn bearer(token: &str) -> String {
    format!("authorization: Bearer {token}")
}

/// A minimal HTTP/1.1 client over one keep-alive connection: `GET /api/projects` with one
/// header, responses read by their `content-length`.
struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    fn connect(addr: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    fn get(&mut self, header: &str) -> Result<(u16, String), String> {
        let (_, status, body) = self.timed_get(header)?;
        Ok((status, body))
    }

    /// Sends the request; returns the time to the whole response, its status and body.
    fn timed_get(&mut self, header: &str) -> Result<(Duration, u16, String), String> {
        let request =
            format!("GET /api/projects HTTP/1.1\r\nhost: localhost:3000\r\n{header}\r\n\r\n");
        let started = Instant::now();
        self.stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut chunk = [0_u8; 8192];
        let head_end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = self.stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {head}"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| format!("a response without content-length: {head}"))?;
        while self.buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let elapsed = started.elapsed();
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + length]).into_owned();
        self.buf.drain(..head_end + length);
        Ok((elapsed, status, body))
    }
}

/// One request per header, each answered 200; returns the latencies.
fn cold_run(
    http: &mut Http,
    headers: impl Iterator<Item = String>,
    what: &str,
) -> Result<Vec<Duration>, String> {
    let mut times = Vec::new();
    for header in headers {
        let (elapsed, status, body) = http.timed_get(&header)?;
        if status != 200 {
            return Err(format!(
                "{what} request {}: HTTP {status} {body}",
                times.len()
            ));
        }
        times.push(elapsed);
    }
    Ok(times)
}

fn percentiles_row(what: &str, mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        ms(times[i])
    };
    format!(
        "| {what} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        times.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        ms(times[times.len() - 1])
    )
}

fn load_sh(root: &Path, env: &ServerEnv) -> Result<(), String> {
    run_status(
        "benches/load.sh",
        Command::new(root.join("benches/load.sh"))
            .args(["axum", "postgres"])
            .env("LOAD_DATABASE_URL", &env.database_url)
            .env("LOAD_TARGET_BIN", &env.bin),
    )
}

/// The size of every table and index of the library's schema.
fn sizes(db: &Database) -> Result<(), String> {
    step("table and index sizes");
    let tables = db.query(&format!(
        "SELECT s.relname, s.n_live_tup, pg_size_pretty(pg_table_size(s.relid)),
                pg_size_pretty(pg_indexes_size(s.relid)),
                pg_size_pretty(pg_total_relation_size(s.relid))
         FROM pg_stat_user_tables AS s WHERE s.schemaname = '{SCHEMA}'
         ORDER BY pg_total_relation_size(s.relid) DESC, s.relname"
    ))?;
    println!("| table | rows | table | indexes | total |");
    println!("|---|---:|---:|---:|---:|");
    for line in tables.lines() {
        println!("| {} |", line.replace('|', " | "));
    }
    let indexes = db.query(&format!(
        "SELECT s.relname, s.indexrelname, pg_size_pretty(pg_relation_size(s.indexrelid))
         FROM pg_stat_user_indexes AS s WHERE s.schemaname = '{SCHEMA}'
         ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname"
    ))?;
    println!();
    println!("| table | index | size |");
    println!("|---|---|---:|");
    for line in indexes.lines() {
        println!("| {} |", line.replace('|', " | "));
    }
    println!();
    Ok(())
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of each query of the cold path, with the sample's values;
/// fails when a plan reads a table other than through an index condition.
fn explain(db: &Database, cookie: &str, token: &str) -> Result<(), String> {
    step("EXPLAIN (ANALYZE, BUFFERS) of the cold path's queries");
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .ok_or("unreadable sample token")?;
    let field = |name| json_string_field(&claims, name).ok_or(format!("no {name} in the claims"));
    let (user, org, jti) = (field("sub")?, field("org")?, field("jti")?);
    // The stores' statements, their WHERE and ORDER BY as in crates/keystead-postgres/src
    // (the column lists shortened to `*`).
    let queries = [
        (
            "session by token hash (sessions.rs, session_by_token_hash)",
            format!(
                "SELECT * FROM {SCHEMA}.sessions WHERE token_hash = \
                 sha256(convert_to('{cookie}', 'UTF8'))"
            ),
        ),
        (
            "user by id (users.rs, user_by_id)",
            format!("SELECT * FROM {SCHEMA}.users WHERE id = '{user}'"),
        ),
        (
            "membership (orgs.rs, membership)",
            format!(
                "SELECT * FROM {SCHEMA}.memberships WHERE org_id = '{org}' AND user_id = '{user}'"
            ),
        ),
        (
            "token by id (tokens.rs, api_token)",
            format!("SELECT * FROM {SCHEMA}.api_tokens WHERE id = '{jti}'"),
        ),
        (
            "revoked tokens (tokens.rs, revoked_api_token_ids)",
            format!(
                "SELECT id, expires_at FROM {SCHEMA}.api_tokens \
                 WHERE revoked_at IS NOT NULL AND expires_at > now()"
            ),
        ),
    ];
    for (what, sql) in queries {
        let plan = db.query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"))?;
        println!("-- {what}\n{sql}\n{plan}");
        // An index walked without a condition reads the whole table too.
        if plan.contains("Seq Scan") || !plan.contains("Index Cond") {
            return Err(format!("{what} does not use an index:\n{plan}"));
        }
    }
    Ok(())
}
