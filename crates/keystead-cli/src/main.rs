//! `authctl`: keystead's operator command line. See `authctl --help` and the crate README.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use authctl::backend::{Backend, OpenError};
use authctl::import::{self, Importer, Report, RoleMap};
use clap::{Args, Parser, Subcommand, ValueEnum};
use keystead::admin::NewAccount;
use keystead::mail::FileMailer;
use keystead::tokens::{DirKeyStore, KeyAlgorithm, KeyRing, KeyStore, TokenConfig};
use keystead::web::AppOrigin;
use keystead::{
    ApiTokenId, AuditEvent, AuditQuery, Auth, AuthError, ErrorCode, OrgId, Organization, Role,
    SecretString, SystemClock, User, UserId,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Operate a keystead installation: migrations, users, sessions, API tokens, organizations,
/// signing keys, the audit log, and imports from Clerk and Auth0.
///
/// Works on the database the apps use (`DATABASE_URL`: postgres://… or sqlite://…), with the
/// same migrations. Every command that changes something writes an audit event naming the
/// operator (`--actor`).
///
/// Exit codes: 0 done; 1 failed (the database or a file could not be used); 2 bad usage;
/// 3 not found; 4 refused by a rule (the last owner, a taken email, a weak password);
/// 5 the schema is not current (`migrate --check`, or any command before `authctl migrate`);
/// 6 an import finished with failed lines (see the report).
#[derive(Debug, Parser)]
#[command(name = "authctl", version, max_term_width = 100)]
struct Cli {
    /// The database: postgres://user@host/db or sqlite://path/to/file.db.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Print JSON (one document, or JSON lines for `audit tail` and `audit export`).
    #[arg(long, global = true)]
    json: bool,
    /// Who runs the command, written into the audit events it causes (default: $USER).
    #[arg(long, env = "AUTHCTL_ACTOR", global = true)]
    actor: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the schema up to date (or only check it, for a deploy pipeline).
    Migrate {
        /// Change nothing; exit 5 when migrations are pending or the schema is of another
        /// version.
        #[arg(long)]
        check: bool,
    },
    /// Find, create, disable, enable and delete users; verify emails; mail reset links.
    #[command(subcommand)]
    Users(UsersCommand),
    /// List or end a user's sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// List or revoke API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Organizations, their members, and roles.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// API token signing keys (the directory the apps use: AUTH_KEYS).
    Keys(KeysArgs),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Import users (and organizations) from a managed provider.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Show a user, by email, id or external id.
    Find {
        /// An email address, a user id, or an external id (`user_2ab…`, `auth0|…`).
        user: String,
    },
    /// Create a user.
    Create {
        /// The email address.
        #[arg(long)]
        email: String,
        /// The display name.
        #[arg(long)]
        name: Option<String>,
        /// Mark the email verified.
        #[arg(long)]
        verified: bool,
        /// Their id at another provider.
        #[arg(long)]
        external_id: Option<String>,
        /// Read a first password from standard input (else the user sets one through a
        /// reset link).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: their sessions end, their API tokens are revoked, sign-in is refused.
    Disable {
        /// Email, id or external id.
        user: String,
    },
    /// Enable a disabled user (revoked tokens stay revoked).
    Enable {
        /// Email, id or external id.
        user: String,
    },
    /// Delete a user and everything that is theirs (not the audit log).
    Delete {
        /// Email, id or external id.
        user: String,
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
    /// Mark a user's email verified.
    Verify {
        /// Email, id or external id.
        user: String,
    },
    /// Mail a user a password reset link (APP_ORIGIN for the link, AUTH_MAIL_DIR for the
    /// mail, as the apps).
    SendReset {
        /// Email, id or external id.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// A user's live sessions.
    List {
        /// Email, id or external id.
        #[arg(long)]
        user: String,
    },
    /// End every session of a user, on every instance.
    Revoke {
        /// Email, id or external id.
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// An organization's API tokens (revoked and expired ones too).
    List {
        /// Organization id, slug or external id.
        #[arg(long)]
        org: String,
        /// Only this user's (email, id or external id).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an API token, on every instance.
    Revoke {
        /// The token's id (its `jti`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum OrgsCommand {
    /// Every organization, or a user's.
    List {
        /// Only this user's organizations.
        #[arg(long)]
        user: Option<String>,
    },
    /// One organization.
    Show {
        /// Id, slug or external id.
        org: String,
    },
    /// An organization's members and roles.
    Members {
        /// Id, slug or external id.
        org: String,
    },
    /// Change a member's role (an organization keeps an owner).
    SetRole {
        /// Id, slug or external id.
        org: String,
        /// Email, id or external id.
        user: String,
        /// owner, admin, member, or a role the app defines.
        role: String,
    },
}

#[derive(Debug, Args)]
struct KeysArgs {
    /// The key directory (the apps' AUTH_KEYS).
    #[arg(long, env = "AUTH_KEYS", default_value = "var/keys")]
    keys_dir: PathBuf,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// The keys, newest first (never their secrets).
    List,
    /// Make a new signing key; the old one verifies for the longest token lifetime more.
    /// Running instances load it within the staleness bound.
    Rotate,
    /// Stop a key verifying at once (a leaked key): every token it signed fails.
    Retire {
        /// The key id.
        kid: String,
    },
}

#[derive(Debug, Args)]
struct AuditFilter {
    /// Only events concerning or done by this user (email, id or external id).
    #[arg(long)]
    user: Option<String>,
    /// Only events in this organization (id, slug or external id).
    #[arg(long)]
    org: Option<String>,
    /// Only events of this kind (`sign_in.failed`, `admin.user_disabled`, …).
    #[arg(long)]
    kind: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_rfc3339)]
    since: Option<OffsetDateTime>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_parser = parse_rfc3339)]
    until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated, with a header.
    Csv,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// The latest events, oldest first; `--follow` keeps printing new ones.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Keep watching (every second) until interrupted.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        filter: AuditFilter,
    },
    /// Every matching event, newest first.
    Export {
        /// The format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: AuditFilter,
    },
}

#[derive(Debug, Args)]
struct ImportOptions {
    /// Check everything and report what would happen; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the report, one JSON object per line, to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// How many users to import at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Clerk: the dashboard's user export (CSV, with password_digest and password_hasher),
    /// and optionally organizations and memberships from the Backend API (JSON).
    Clerk {
        /// The users CSV.
        users: PathBuf,
        /// `GET /v1/organizations` output (a page, its `data` array, or JSON lines of pages).
        #[arg(long)]
        organizations: Option<PathBuf>,
        /// `GET /v1/organizations/{id}/memberships` output, for every organization.
        #[arg(long, requires = "organizations")]
        memberships: Option<PathBuf>,
        /// A JSON object mapping Clerk roles to ours (`{"org:billing": "billing"}`); `org:admin`
        /// and `org:member` map to admin and member unless it says otherwise.
        #[arg(long)]
        role_map: Option<PathBuf>,
        #[command(flatten)]
        options: ImportOptions,
    },
    /// Auth0: the bulk user export (NDJSON), with the password hash export when you have it.
    Auth0 {
        /// The users NDJSON.
        users: PathBuf,
        /// The password hash export (JSON lines with `_id.$oid`, `email`, `passwordHash`).
        #[arg(long)]
        password_hashes: Option<PathBuf>,
        #[command(flatten)]
        options: ImportOptions,
    },
}

fn parse_rfc3339(value: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// A command's failure, with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

const EXIT_FAILED: u8 = 1;
const EXIT_NOT_FOUND: u8 = 3;
const EXIT_REFUSED: u8 = 4;
const EXIT_SCHEMA: u8 = 5;
const EXIT_IMPORT_FAILURES: u8 = 6;

impl From<AuthError> for Failure {
    fn from(err: AuthError) -> Self {
        let code = match err.code {
            ErrorCode::NotFound => EXIT_NOT_FOUND,
            ErrorCode::Unavailable | ErrorCode::Internal => EXIT_FAILED,
            _ => EXIT_REFUSED,
        };
        Self::new(code, format!("{err}"))
    }
}

impl From<keystead::StoreError> for Failure {
    fn from(err: keystead::StoreError) -> Self {
        AuthError::from(err).into()
    }
}

impl From<OpenError> for Failure {
    fn from(err: OpenError) -> Self {
        Self::new(EXIT_FAILED, err.to_string())
    }
}

impl From<import::SourceError> for Failure {
    fn from(err: import::SourceError) -> Self {
        Self::new(EXIT_FAILED, err.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Self::new(EXIT_FAILED, err.to_string())
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("authctl: could not start: {err}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("authctl: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// What the commands share: the output mode, the operator, the database.
struct Context {
    json: bool,
    actor: String,
    backend: Backend,
}

impl Context {
    /// Prints `value` as JSON, or `text` for people.
    fn print(&self, value: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    /// The library over this database (with its change feed, so that running instances hear
    /// of changes at once), signing keys when `keys` is given, and the apps' mail directory
    /// (`AUTH_MAIL_DIR`, made if missing) when the command sends `mail`.
    async fn auth(&self, keys: Option<KeyRing>, mail: bool) -> Result<Auth, Failure> {
        let origin = match std::env::var("APP_ORIGIN") {
            Ok(origin) if !origin.trim().is_empty() => AppOrigin::parse(&origin)
                .map_err(|e| Failure::new(EXIT_FAILED, format!("APP_ORIGIN: {e}")))?,
            _ => AppOrigin::parse("http://localhost:3000").expect("a valid origin"),
        };
        let mut builder = Auth::builder(self.backend.store(), origin);
        if mail {
            let mail_dir = std::env::var("AUTH_MAIL_DIR").unwrap_or_else(|_| "var/mail".to_owned());
            let mailer = FileMailer::new(&mail_dir)
                .map_err(|e| Failure::new(EXIT_FAILED, format!("AUTH_MAIL_DIR {mail_dir}: {e}")))?;
            builder = builder.mailer(Arc::new(mailer));
        }
        if let Some(feed) = self.backend.feed().await? {
            builder = builder.change_feed(feed);
        }
        if let Some(keys) = keys {
            builder = builder.api_tokens(keys, TokenConfig::default());
        }
        Ok(builder.build())
    }

    async fn user(&self, key: &str) -> Result<User, Failure> {
        let auth = self.auth(None, false).await?;
        auth.admin(&self.actor)
            .find_user(key)
            .await?
            .ok_or_else(|| Failure::new(EXIT_NOT_FOUND, format!("no user {key:?}")))
    }

    async fn org(&self, key: &str) -> Result<Organization, Failure> {
        let store = self.backend.store();
        let key = key.trim();
        if let Ok(id) = uuid::Uuid::parse_str(key)
            && let Some(org) = store.organization(OrgId::from_uuid(id)).await?
        {
            return Ok(org);
        }
        if let Some(org) = store.organization_by_slug(key).await? {
            return Ok(org);
        }
        store
            .organization_by_external_id(key)
            .await?
            .ok_or_else(|| Failure::new(EXIT_NOT_FOUND, format!("no organization {key:?}")))
    }
}

async fn run(cli: Cli) -> Outcome {
    let Some(url) = cli.database_url.filter(|u| !u.trim().is_empty()) else {
        return Err(Failure::new(
            2,
            "no database: set DATABASE_URL or pass --database-url",
        ));
    };
    let actor = cli
        .actor
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "authctl".to_owned());
    let creating = matches!(cli.command, Command::Migrate { check: false });
    let backend = Backend::open(&url, creating).await?;
    let context = Context {
        json: cli.json,
        actor,
        backend,
    };
    if let Command::Migrate { check } = cli.command {
        return migrate(&context, check).await;
    }
    let status = context.backend.status().await?;
    if !status.is_current() {
        return Err(Failure::new(
            EXIT_SCHEMA,
            format!(
                "the schema is not current (pending {:?}, changed {:?}, unknown {:?}): run `authctl migrate` with this version first",
                status.pending, status.changed, status.unknown
            ),
        ));
    }
    match cli.command {
        Command::Migrate { .. } => unreachable!("handled above"),
        Command::Users(command) => users(&context, command).await,
        Command::Sessions(command) => sessions(&context, command).await,
        Command::Tokens(command) => tokens(&context, command).await,
        Command::Orgs(command) => orgs(&context, command).await,
        Command::Keys(args) => keys(&context, args).await,
        Command::Audit(command) => audit(&context, command).await,
        Command::Import(command) => import(&context, command).await,
    }
}

async fn migrate(context: &Context, check: bool) -> Outcome {
    let status = context.backend.status().await?;
    let report = json!({
        "applied": status.applied,
        "pending": status.pending,
        "changed": status.changed,
        "unknown": status.unknown,
        "current": status.is_current(),
    });
    if check {
        context.print(&report, || {
            if status.is_current() {
                format!(
                    "schema current ({} migrations applied)",
                    status.applied.len()
                )
            } else {
                format!(
                    "schema not current: pending {:?}, changed {:?}, unknown {:?}",
                    status.pending, status.changed, status.unknown
                )
            }
        });
        return if status.is_current() {
            Ok(())
        } else {
            Err(Failure::new(EXIT_SCHEMA, "migrations pending"))
        };
    }
    if !status.changed.is_empty() || !status.unknown.is_empty() {
        return Err(Failure::new(
            EXIT_SCHEMA,
            format!(
                "refusing to migrate: changed {:?}, unknown {:?} (a database of another version)",
                status.changed, status.unknown
            ),
        ));
    }
    context.backend.migrate().await?;
    let after = context.backend.status().await?;
    context.print(
        &json!({ "applied_now": status.pending, "applied": after.applied, "current": after.is_current() }),
        || {
            if status.pending.is_empty() {
                "schema already current".to_owned()
            } else {
                format!("applied migrations {:?}", status.pending)
            }
        },
    );
    Ok(())
}

fn time_text(at: Option<OffsetDateTime>) -> String {
    at.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id.to_string(),
        "email": user.email.as_str(),
        "name": user.name,
        "email_verified_at": user.email_verified_at.and_then(|t| t.format(&Rfc3339).ok()),
        "created_at": user.created_at.format(&Rfc3339).ok(),
        "external_id": user.external_id,
        "disabled_at": user.disabled_at.and_then(|t| t.format(&Rfc3339).ok()),
    })
}

fn user_text(user: &User) -> String {
    format!(
        "id           {}\nemail        {}\nname         {}\nverified     {}\ncreated      {}\nexternal id  {}\ndisabled     {}",
        user.id,
        user.email.as_str(),
        user.name.as_deref().unwrap_or("-"),
        time_text(user.email_verified_at),
        time_text(Some(user.created_at)),
        user.external_id.as_deref().unwrap_or("-"),
        time_text(user.disabled_at),
    )
}

async fn users(context: &Context, command: UsersCommand) -> Outcome {
    let mails = matches!(command, UsersCommand::SendReset { .. });
    let auth = context.auth(None, mails).await?;
    let admin = auth.admin(&context.actor);
    match command {
        UsersCommand::Find { user } => {
            let user = context.user(&user).await?;
            let password = context
                .backend
                .store()
                .password_credential(user.id)
                .await?
                .is_some();
            let links = context
                .backend
                .store()
                .external_accounts_for_user(user.id)
                .await?;
            let mut value = user_json(&user);
            value["has_password"] = json!(password);
            value["identities"] = json!(
                links
                    .iter()
                    .map(|l| json!({"provider": l.provider, "issuer": l.issuer, "subject": l.subject}))
                    .collect::<Vec<_>>()
            );
            context.print(&value, || {
                format!(
                    "{}\npassword     {}\nidentities   {}",
                    user_text(&user),
                    if password { "yes" } else { "no" },
                    if links.is_empty() {
                        "-".to_owned()
                    } else {
                        links
                            .iter()
                            .map(|l| format!("{} ({})", l.provider, l.subject))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )
            });
        }
        UsersCommand::Create {
            email,
            name,
            verified,
            external_id,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                let text = text.trim_end_matches(['\r', '\n']).to_owned();
                Some(SecretString::new(text))
            } else {
                None
            };
            let user = admin
                .create_user(NewAccount {
                    email,
                    name,
                    password,
                    verified,
                    external_id,
                })
                .await?;
            context.print(&user_json(&user), || {
                format!("created\n{}", user_text(&user))
            });
        }
        UsersCommand::Disable { user } => {
            let user = context.user(&user).await?;
            let user = admin.disable_user(user.id).await?;
            context.print(&user_json(&user), || {
                format!(
                    "disabled {} (sessions ended, API tokens revoked)",
                    user.email.as_str()
                )
            });
        }
        UsersCommand::Enable { user } => {
            let user = context.user(&user).await?;
            let user = admin.enable_user(user.id).await?;
            context.print(&user_json(&user), || {
                format!("enabled {}", user.email.as_str())
            });
        }
        UsersCommand::Delete { user, yes } => {
            let user = context.user(&user).await?;
            if !yes {
                return Err(Failure::new(
                    2,
                    format!(
                        "this deletes {} and everything that is theirs: pass --yes",
                        user.email.as_str()
                    ),
                ));
            }
            admin.delete_user(user.id).await?;
            context.print(&json!({ "deleted": user.id.to_string() }), || {
                format!("deleted {} ({})", user.email.as_str(), user.id)
            });
        }
        UsersCommand::Verify { user } => {
            let user = context.user(&user).await?;
            let user = admin.mark_verified(user.id).await?;
            context.print(&user_json(&user), || {
                format!("verified {}", user.email.as_str())
            });
        }
        UsersCommand::SendReset { user } => {
            let user = context.user(&user).await?;
            admin.send_password_reset(user.id).await?;
            context.print(&json!({ "sent": user.email.as_str() }), || {
                format!("reset link sent to {}", user.email.as_str())
            });
        }
    }
    Ok(())
}

async fn sessions(context: &Context, command: SessionsCommand) -> Outcome {
    match command {
        SessionsCommand::List { user } => {
            let user = context.user(&user).await?;
            let now = keystead::Clock::now(&SystemClock);
            let sessions = context
                .backend
                .store()
                .sessions_for_user(user.id, now)
                .await?;
            let value = json!(
                sessions
                    .iter()
                    .map(|s| json!({
                        "id": s.id.to_string(),
                        "created_at": s.created_at.format(&Rfc3339).ok(),
                        "last_seen_at": s.last_seen_at.format(&Rfc3339).ok(),
                        "expires_at": s.expires_at.format(&Rfc3339).ok(),
                        "ip": s.ip,
                        "user_agent": s.user_agent,
                    }))
                    .collect::<Vec<_>>()
            );
            context.print(&value, || {
                if sessions.is_empty() {
                    return format!("{} has no live session", user.email.as_str());
                }
                sessions
                    .iter()
                    .map(|s| {
                        format!(
                            "{}  seen {}  expires {}  {}  {}",
                            s.id,
                            time_text(Some(s.last_seen_at)),
                            time_text(Some(s.expires_at)),
                            s.ip.as_deref().unwrap_or("-"),
                            s.user_agent.as_deref().unwrap_or("-")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SessionsCommand::Revoke { user } => {
            let user = context.user(&user).await?;
            let auth = context.auth(None, false).await?;
            let ended = auth.admin(&context.actor).revoke_sessions(user.id).await?;
            context.print(&json!({ "ended": ended }), || {
                format!("ended {ended} session(s) of {}", user.email.as_str())
            });
        }
    }
    Ok(())
}

async fn tokens(context: &Context, command: TokensCommand) -> Outcome {
    match command {
        TokensCommand::List { org, user } => {
            let org = context.org(&org).await?;
            let user = match user {
                Some(user) => Some(context.user(&user).await?.id),
                None => None,
            };
            let records = context
                .backend
                .store()
                .api_tokens_for_org(org.id, user)
                .await?;
            let value = json!(
                records
                    .iter()
                    .map(|r| json!({
                        "id": r.id.to_string(),
                        "name": r.name,
                        "user_id": r.user_id.to_string(),
                        "scopes": r.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "created_at": r.created_at.format(&Rfc3339).ok(),
                        "expires_at": r.expires_at.format(&Rfc3339).ok(),
                        "last_used_at": r.last_used_at.and_then(|t| t.format(&Rfc3339).ok()),
                        "revoked_at": r.revoked_at.and_then(|t| t.format(&Rfc3339).ok()),
                    }))
                    .collect::<Vec<_>>()
            );
            context.print(&value, || {
                if records.is_empty() {
                    return format!("{} has no API token", org.slug);
                }
                records
                    .iter()
                    .map(|r| {
                        format!(
                            "{}  {:<20}  user {}  expires {}  used {}  revoked {}",
                            r.id,
                            r.name,
                            r.user_id,
                            time_text(Some(r.expires_at)),
                            time_text(r.last_used_at),
                            time_text(r.revoked_at)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TokensCommand::Revoke { id } => {
            let id = uuid::Uuid::parse_str(id.trim())
                .map(ApiTokenId::from_uuid)
                .map_err(|_| Failure::new(EXIT_NOT_FOUND, format!("no API token {id:?}")))?;
            let auth = context.auth(None, false).await?;
            let record = auth.admin(&context.actor).revoke_api_token(id).await?;
            context.print(
                &json!({ "revoked": id.to_string(), "revoked_at": record.revoked_at.and_then(|t| t.format(&Rfc3339).ok()) }),
                || format!("revoked {} ({})", record.name, id),
            );
        }
    }
    Ok(())
}

fn org_json(org: &Organization) -> Value {
    json!({
        "id": org.id.to_string(),
        "name": org.name,
        "slug": org.slug,
        "created_at": org.created_at.format(&Rfc3339).ok(),
        "external_id": org.external_id,
    })
}

async fn orgs(context: &Context, command: OrgsCommand) -> Outcome {
    let store = context.backend.store();
    match command {
        OrgsCommand::List { user } => {
            let mut rows: Vec<(Organization, Option<Role>)> = Vec::new();
            if let Some(user) = user {
                let user = context.user(&user).await?;
                for entry in store.organizations_for_user(user.id).await? {
                    rows.push((entry.organization, Some(entry.role)));
                }
            } else {
                let mut after = None;
                loop {
                    let page = store.organizations(after, 1000).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id);
                    rows.extend(page.into_iter().map(|o| (o, None)));
                }
            }
            let value = json!(
                rows.iter()
                    .map(|(o, role)| {
                        let mut v = org_json(o);
                        if let Some(role) = role {
                            v["role"] = json!(role.as_str());
                        }
                        v
                    })
                    .collect::<Vec<_>>()
            );
            context.print(&value, || {
                rows.iter()
                    .map(|(o, role)| {
                        format!(
                            "{}  {:<24} {}{}",
                            o.id,
                            o.slug,
                            o.name,
                            role.as_ref()
                                .map(|r| format!("  ({r})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OrgsCommand::Show { org } => {
            let org = context.org(&org).await?;
            let members = store.members(org.id).await?;
            let mut value = org_json(&org);
            value["members"] = json!(members.len());
            context.print(&value, || {
                format!(
                    "id           {}\nname         {}\nslug         {}\ncreated      {}\nexternal id  {}\nmembers      {}",
                    org.id,
                    org.name,
                    org.slug,
                    time_text(Some(org.created_at)),
                    org.external_id.as_deref().unwrap_or("-"),
                    members.len()
                )
            });
        }
        OrgsCommand::Members { org } => {
            let org = context.org(&org).await?;
            let members = store.members(org.id).await?;
            let value = json!(
                members
                    .iter()
                    .map(|m| json!({
                        "user_id": m.user.id.to_string(),
                        "email": m.user.email.as_str(),
                        "role": m.membership.role.as_str(),
                        "joined_at": m.membership.joined_at.format(&Rfc3339).ok(),
                    }))
                    .collect::<Vec<_>>()
            );
            context.print(&value, || {
                members
                    .iter()
                    .map(|m| {
                        format!(
                            "{:<8} {}  {}",
                            m.membership.role.as_str(),
                            m.user.email.as_str(),
                            m.user.id
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OrgsCommand::SetRole { org, user, role } => {
            let org = context.org(&org).await?;
            let user = context.user(&user).await?;
            let role = Role::new(role.trim().to_owned())
                .map_err(|e| Failure::new(2, format!("role {role:?}: {e}")))?;
            let auth = context.auth(None, false).await?;
            let membership = auth
                .admin(&context.actor)
                .set_role(org.id, user.id, &role)
                .await?;
            context.print(
                &json!({ "org_id": org.id.to_string(), "user_id": user.id.to_string(), "role": membership.role.as_str() }),
                || format!("{} is now {} of {}", user.email.as_str(), membership.role, org.slug),
            );
        }
    }
    Ok(())
}

async fn keys(context: &Context, args: KeysArgs) -> Outcome {
    let store = DirKeyStore::new(&args.keys_dir).map_err(|e| {
        Failure::new(
            EXIT_FAILED,
            format!("key directory {}: {e}", args.keys_dir.display()),
        )
    })?;
    if matches!(args.command, KeysCommand::List) {
        let mut keys = store.load_keys().await?;
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        let value = json!(
            keys.iter()
                .map(|k| json!({
                    "kid": k.kid,
                    "algorithm": format!("{:?}", k.algorithm),
                    "created_at": k.created_at.format(&Rfc3339).ok(),
                    "retired_at": k.retired_at.and_then(|t| t.format(&Rfc3339).ok()),
                    "verify_until": k.verify_until.and_then(|t| t.format(&Rfc3339).ok()),
                }))
                .collect::<Vec<_>>()
        );
        context.print(&value, || {
            if keys.is_empty() {
                return "no keys (the apps make one at first start)".to_owned();
            }
            keys.iter()
                .map(|k| {
                    let state = match (k.retired_at, k.verify_until) {
                        (None, _) => "signing".to_owned(),
                        (Some(_), Some(until)) => {
                            format!("verifies until {}", time_text(Some(until)))
                        }
                        (Some(_), None) => "retired".to_owned(),
                    };
                    format!(
                        "{}  {:?}  made {}  {}",
                        k.kid,
                        k.algorithm,
                        time_text(Some(k.created_at)),
                        state
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(());
    }
    let ring = KeyRing::load_or_create(
        Arc::new(store),
        Arc::new(SystemClock),
        KeyAlgorithm::EdDSA,
        TokenConfig::default().max_ttl,
    )
    .await?;
    let auth = context.auth(Some(ring), false).await?;
    let admin = auth.admin(&context.actor);
    match args.command {
        KeysCommand::List => unreachable!("handled above"),
        KeysCommand::Rotate => {
            let kid = admin.rotate_keys().await?;
            context.print(&json!({ "kid": kid }), || {
                format!(
                    "new signing key {kid}; running instances load it within the staleness bound"
                )
            });
        }
        KeysCommand::Retire { kid } => {
            admin.retire_key(&kid).await?;
            context.print(&json!({ "retired": kid }), || {
                format!("retired {kid}: the tokens it signed fail from now on")
            });
        }
    }
    Ok(())
}

fn event_text(event: &AuditEvent) -> String {
    format!(
        "{}  {:<26} user {}  org {}  {}",
        time_text(Some(event.at)),
        event.kind,
        event
            .user_id
            .map_or_else(|| "-".to_owned(), |u| u.to_string()),
        event
            .org_id
            .map_or_else(|| "-".to_owned(), |o| o.to_string()),
        event.data
    )
}

async fn audit_query(context: &Context, filter: AuditFilter) -> Result<AuditQuery, Failure> {
    let user_id: Option<UserId> = match filter.user {
        Some(user) => Some(context.user(&user).await?.id),
        None => None,
    };
    let org_id = match filter.org {
        Some(org) => Some(context.org(&org).await?.id),
        None => None,
    };
    Ok(AuditQuery {
        user_id,
        org_id,
        kind: filter.kind,
        since: filter.since,
        until: filter.until,
        before: None,
        limit: 1000,
    })
}

async fn audit(context: &Context, command: AuditCommand) -> Outcome {
    let store = context.backend.store();
    match command {
        AuditCommand::Tail {
            lines,
            follow,
            filter,
        } => {
            let mut query = audit_query(context, filter).await?;
            query.limit = lines.min(1000);
            let mut events = store.audit_events(&query).await?;
            events.reverse();
            let mut last = events.last().map(|e| (e.at, e.id));
            for event in &events {
                print_event(context, event);
            }
            if follow {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = tokio::signal::ctrl_c() => break,
                    }
                    let mut fresh = store
                        .audit_events(&AuditQuery {
                            since: last.map(|(at, _)| at).or(query.since),
                            limit: 1000,
                            ..query.clone()
                        })
                        .await?;
                    fresh.retain(|e| last.is_none_or(|l| (e.at, e.id) > l));
                    fresh.reverse();
                    for event in &fresh {
                        print_event(context, event);
                    }
                    if let Some(event) = fresh.last() {
                        last = Some((event.at, event.id));
                    }
                }
            }
        }
        AuditCommand::Export {
            format,
            output,
            filter,
        } => {
            let mut query = audit_query(context, filter).await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            // The formats of the HTTP export (`keystead::audit`): CSV cells quoted, and a cell
            // that starts like a formula defused with a `'`.
            if matches!(format, ExportFormat::Csv) {
                out.write_all(keystead::audit::csv_header().as_bytes())?;
            }
            let mut count = 0_usize;
            loop {
                let page = store.audit_events(&query).await?;
                for event in &page {
                    let line = match format {
                        ExportFormat::Csv => keystead::audit::csv_line(event),
                        ExportFormat::Jsonl => keystead::audit::json_line(event),
                    };
                    out.write_all(line.as_bytes())?;
                }
                count += page.len();
                match page.last() {
                    Some(last) if page.len() == query.limit as usize => {
                        query.before = Some(last.id);
                    }
                    _ => break,
                }
            }
            out.flush()?;
            if output.is_some() {
                eprintln!("exported {count} event(s)");
            }
        }
    }
    Ok(())
}

fn print_event(context: &Context, event: &AuditEvent) {
    if context.json {
        println!("{}", keystead::audit::json_value(event));
    } else {
        println!("{}", event_text(event));
    }
}

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {bar:40} {pos}/{len} users ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

async fn import(context: &Context, command: ImportCommand) -> Outcome {
    let store = context.backend.store();
    let (report, options) = match command {
        ImportCommand::Clerk {
            users,
            organizations,
            memberships,
            role_map,
            options,
        } => {
            let roles = match role_map {
                Some(path) => RoleMap::from_file(&path)?,
                None => RoleMap::default(),
            };
            let (sources, mut lines) = import::read_clerk_csv(&users)?;
            let orgs = match &organizations {
                Some(path) => Some(import::read_clerk_orgs(path)?),
                None => None,
            };
            let members = match &memberships {
                Some(path) => Some(import::read_clerk_memberships(path)?),
                None => None,
            };
            let importer = Importer::new(Arc::clone(&store), &context.actor, "clerk")
                .dry_run(options.dry_run)
                .jobs(options.jobs)
                .roles(roles);
            let bar = progress_bar(sources.len());
            let ticker = bar.clone();
            lines.extend(importer.import_users(sources, move || ticker.inc(1)).await);
            bar.finish_and_clear();
            if let Some((orgs, org_lines)) = orgs {
                lines.extend(org_lines);
                let (members, member_lines) = members.unwrap_or_default();
                lines.extend(member_lines);
                lines.extend(importer.import_orgs(orgs, members).await);
            }
            (lines, options)
        }
        ImportCommand::Auth0 {
            users,
            password_hashes,
            options,
        } => {
            let (sources, mut lines) = import::read_auth0(&users, password_hashes.as_deref())?;
            let importer = Importer::new(Arc::clone(&store), &context.actor, "auth0")
                .dry_run(options.dry_run)
                .jobs(options.jobs);
            let bar = progress_bar(sources.len());
            let ticker = bar.clone();
            lines.extend(importer.import_users(sources, move || ticker.inc(1)).await);
            bar.finish_and_clear();
            (lines, options)
        }
    };
    let mut report = Report {
        dry_run: options.dry_run,
        lines: report,
    };
    report
        .lines
        .sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    if let Some(path) = &options.report {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for line in &report.lines {
            writeln!(file, "{}", serde_json::to_string(line).unwrap_or_default())?;
        }
        file.flush()?;
    }
    let users = report.counts("user");
    let organizations = report.counts("organization");
    let memberships = report.counts("membership");
    if context.json {
        println!(
            "{}",
            json!({
                "dry_run": report.dry_run,
                "users": users,
                "organizations": organizations,
                "memberships": memberships,
                "failed": report.lines.iter().filter(|l| l.outcome == import::Outcome::Failed).collect::<Vec<_>>(),
            })
        );
    } else {
        for line in report.lines.iter().filter(|l| {
            l.outcome == import::Outcome::Failed
                || l.note
                    .as_deref()
                    .is_some_and(|n| n.starts_with(import::RESET_REQUIRED))
        }) {
            eprintln!("{line}");
        }
        let verb = if report.dry_run {
            "would import"
        } else {
            "imported"
        };
        println!(
            "users: {verb} {}, updated {}, unchanged {}, failed {} ({} need a password reset)",
            users.imported, users.updated, users.unchanged, users.failed, users.reset_required
        );
        if organizations != import::Counts::default() || memberships != import::Counts::default() {
            println!(
                "organizations: {verb} {}, updated {}, unchanged {}, failed {}",
                organizations.imported,
                organizations.updated,
                organizations.unchanged,
                organizations.failed
            );
            println!(
                "memberships: {verb} {}, updated {}, unchanged {}, failed {}",
                memberships.imported,
                memberships.updated,
                memberships.unchanged,
                memberships.failed
            );
        }
        if report.dry_run {
            println!("dry run: nothing was written");
        }
    }
    if report.has_failures() {
        return Err(Failure::new(
            EXIT_IMPORT_FAILURES,
            "some lines failed (listed above; fix them and run the import again: imported lines are skipped)",
        ));
    }
    Ok(())
}
