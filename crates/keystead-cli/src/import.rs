//! Imports from managed providers: Clerk's dashboard CSV export (with `password_digest` and
//! `password_hasher`) plus its organizations and memberships from the Backend API, and Auth0's
//! bulk user export (NDJSON) with its password hash export.
//!
//! The rules:
//! - A user keeps the provider's id as [`User::external_id`] (unique), so the app's own rows
//!   that hold `user_…` ids can be mapped (`Auth::user_by_external_id`).
//! - bcrypt and argon2 digests are stored as they are (no hashing on the import path); the
//!   library re-hashes them to argon2id at the user's first sign-in. A digest of another
//!   hasher (or a bcrypt cost above what sign-in verifies) is not imported: the user is
//!   imported without a password and the report says they must reset it.
//! - Google identities (Auth0's `google-oauth2` identities) become external accounts keyed on
//!   (`https://accounts.google.com`, subject).
//! - Each user is one transaction: a line is imported whole or not at all. A second run finds
//!   users by their external id and skips them (or updates the name and verification when the
//!   export changed them): re-running after a failure resumes, and never duplicates.
//! - Organizations are found by their external id too; Clerk's `org:admin` and `org:member`
//!   become `admin` and `member`, other roles go through the role map, and the organization's
//!   creator (else its earliest admin) becomes its owner.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use keystead::{
    AuditEvent, AuditKind, AuthStore, Conflict, Email, ExternalAccount, ExternalAccountId,
    Membership, NewUser, OrgId, Organization, Role, SecretString, StoreError, User, UserId,
};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Google's issuer: the key of imported Google identities.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The highest bcrypt cost the library verifies by default (`PasswordConfig`): a digest above
/// it could never be checked at sign-in, so it is not imported.
pub const MAX_BCRYPT_COST: u32 = 16;

/// A user as read from an export, before any check.
#[derive(Debug, Clone)]
pub struct SourceUser {
    /// Where it came from (file name).
    pub file: Arc<str>,
    /// Its line in the file (1-based; for a CSV, the record's first line).
    pub line: u64,
    /// The provider's id for it.
    pub external_id: String,
    /// Its email address as exported.
    pub email: String,
    /// Whether the provider had verified the address.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// When it was created at the provider.
    pub created_at: Option<OffsetDateTime>,
    /// Its password digest.
    pub password: SourcePassword,
    /// Google subjects (the `sub` of its Google identities).
    pub google_subjects: Vec<String>,
}

/// A password as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePassword {
    /// No password (a user who signs in with a provider, or never set one).
    None,
    /// A digest the library verifies (bcrypt or argon2, PHC or modular crypt format); a
    /// secret, redacted in `Debug`.
    Digest(SecretString),
    /// A digest the library cannot verify, with why.
    Unsupported(String),
}

impl SourcePassword {
    /// Classifies a digest made by `hasher` (Clerk's `password_hasher`; `None`: tell by the
    /// digest's prefix).
    #[must_use]
    pub fn classify(digest: &str, hasher: Option<&str>) -> Self {
        let digest = digest.trim();
        if digest.is_empty() {
            return Self::None;
        }
        let hasher = hasher.map(str::trim).filter(|h| !h.is_empty());
        match hasher {
            Some("bcrypt") | None if digest.starts_with("$2") => match bcrypt_cost(digest) {
                Some(cost) if cost <= MAX_BCRYPT_COST => {
                    Self::Digest(SecretString::new(digest.to_owned()))
                }
                Some(cost) => Self::Unsupported(format!(
                    "bcrypt cost {cost} is above what sign-in verifies ({MAX_BCRYPT_COST})"
                )),
                None => Self::Unsupported("malformed bcrypt digest".to_owned()),
            },
            Some("argon2id" | "argon2i" | "argon2") | None if digest.starts_with("$argon2") => {
                match argon2::password_hash::PasswordHash::new(digest) {
                    Ok(_) => Self::Digest(SecretString::new(digest.to_owned())),
                    Err(_) => Self::Unsupported("malformed argon2 digest".to_owned()),
                }
            }
            Some(other) => Self::Unsupported(format!("password hasher {other:?} is not supported")),
            None => Self::Unsupported("unrecognized password digest".to_owned()),
        }
    }
}

/// The cost of a well-formed bcrypt digest (`$2a$`, `$2b$` or `$2y$`, 60 characters).
fn bcrypt_cost(digest: &str) -> Option<u32> {
    let bytes = digest.as_bytes();
    if bytes.len() != 60 || !matches!(&digest[..4], "$2a$" | "$2b$" | "$2y$") || bytes[6] != b'$' {
        return None;
    }
    let cost: u32 = digest[4..6].parse().ok()?;
    let rest_ok = digest[7..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    ((4..=31).contains(&cost) && rest_ok).then_some(cost)
}

/// What happened to one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Created (in a dry run: would be).
    Imported,
    /// Found by its external id and updated (name, verification).
    Updated,
    /// Found by its external id, nothing to change.
    Unchanged,
    /// Not imported; `reason` says why. Nothing of it was written.
    Failed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Imported => "imported",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportLine {
    /// What the line is: `user`, `organization` or `membership`.
    pub kind: &'static str,
    /// The file.
    pub file: String,
    /// The line in it (for a file that is one JSON document, such as a page of Clerk's
    /// Backend API, the item's position in it, from 1).
    pub line: u64,
    /// The provider's id of the thing, when the line had one.
    pub external_id: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Why it failed, or what to know (e.g. `password reset required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl fmt::Display for ReportLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} {}",
            self.file, self.line, self.kind, self.outcome
        )?;
        if let Some(id) = &self.external_id {
            write!(f, " ({id})")?;
        }
        if let Some(note) = &self.note {
            write!(f, ": {note}")?;
        }
        Ok(())
    }
}

/// The whole run's report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Every line, in file order.
    pub lines: Vec<ReportLine>,
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Created.
    pub imported: usize,
    /// Updated.
    pub updated: usize,
    /// Already there, unchanged.
    pub unchanged: usize,
    /// Not imported.
    pub failed: usize,
    /// Imported without their password (it must be reset).
    pub reset_required: usize,
}

impl Report {
    /// Counts of the lines of `kind`.
    #[must_use]
    pub fn counts(&self, kind: &str) -> Counts {
        let mut counts = Counts::default();
        for line in self.lines.iter().filter(|l| l.kind == kind) {
            match line.outcome {
                Outcome::Imported => counts.imported += 1,
                Outcome::Updated => counts.updated += 1,
                Outcome::Unchanged => counts.unchanged += 1,
                Outcome::Failed => counts.failed += 1,
            }
            if line.outcome != Outcome::Failed
                && line
                    .note
                    .as_deref()
                    .is_some_and(|n| n.starts_with(RESET_REQUIRED))
            {
                counts.reset_required += 1;
            }
        }
        counts
    }

    /// Whether any line failed.
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.lines.iter().any(|l| l.outcome == Outcome::Failed)
    }
}

/// The start of the note of a user imported without their password.
pub const RESET_REQUIRED: &str = "password reset required";

/// A malformed file (not a malformed line: those are report lines).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not what it should be (no header, a missing column, not JSON).
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

fn file_name(path: &Path) -> Arc<str> {
    path.display().to_string().into()
}

fn read(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|source| SourceError::Io {
        file: path.display().to_string(),
        source,
    })
}

/// Reads a time: RFC 3339, or Unix milliseconds (Clerk's API and CSV).
fn parse_time(value: &Value) -> Option<OffsetDateTime> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        }),
        Value::String(s) if !s.trim().is_empty() => {
            let s = s.trim();
            if let Ok(ms) = s.parse::<i64>() {
                return parse_time(&json!(ms));
            }
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        }
        _ => None,
    }
    .map(|t| t.replace_nanosecond(t.microsecond() * 1000).unwrap_or(t))
}

/// A user line that could not be read into a [`SourceUser`]: a failed report line.
fn unreadable(file: &Arc<str>, line: u64, external_id: Option<String>, why: String) -> ReportLine {
    ReportLine {
        kind: "user",
        file: file.to_string(),
        line,
        external_id,
        outcome: Outcome::Failed,
        note: Some(why),
    }
}

/// The lines (1-based) CSV records start on, counted from the bytes as the reader moves
/// forward: the csv crate's own line count is one short after `\r\n` line ends (the form most
/// exports use).
#[derive(Debug, Default)]
struct Lines {
    /// Bytes counted so far.
    at: usize,
    /// Line feeds among them.
    feeds: u64,
}

impl Lines {
    fn of(&mut self, text: &str, position: &csv::Position) -> u64 {
        let bytes = text.as_bytes();
        let mut start = usize::try_from(position.byte())
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start >= self.at {
            self.feeds += bytes[self.at..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.at = start;
        }
        self.feeds + 1
    }
}

/// Reads Clerk's dashboard export: a CSV with a header naming at least `id` and
/// `primary_email_address`; `first_name`, `last_name`, `username`,
/// `verified_email_addresses`, `password_digest`, `password_hasher` and `created_at` are read
/// when present. Rows that cannot be read are returned as failed report lines.
///
/// # Errors
/// A file that cannot be read, or a header without the two required columns.
pub fn read_clerk_csv(path: &Path) -> Result<(Vec<SourceUser>, Vec<ReportLine>), SourceError> {
    let file = file_name(path);
    let text = read(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let format = |message: String| SourceError::Format {
        file: file.to_string(),
        message,
    };
    let headers = reader
        .headers()
        .map_err(|e| format(format!("no CSV header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(id_col), Some(email_col)) = (column("id"), column("primary_email_address")) else {
        return Err(format(
            "the header must name `id` and `primary_email_address` (Clerk's user export)"
                .to_owned(),
        ));
    };
    let [first, last, username, verified, digest, hasher, created] = [
        "first_name",
        "last_name",
        "username",
        "verified_email_addresses",
        "password_digest",
        "password_hasher",
        "created_at",
    ]
    .map(column);
    let mut users = Vec::new();
    let mut failed = Vec::new();
    let mut lines = Lines::default();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, |p| lines.of(&text, p));
                failed.push(unreadable(
                    &file,
                    line,
                    None,
                    format!("unreadable CSV row: {err}"),
                ));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.of(&text, p));
        let get = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let Some(external_id) = get(Some(id_col)) else {
            failed.push(unreadable(&file, line, None, "no `id`".to_owned()));
            continue;
        };
        let Some(email) = get(Some(email_col)) else {
            failed.push(unreadable(
                &file,
                line,
                Some(external_id.to_owned()),
                "no `primary_email_address`".to_owned(),
            ));
            continue;
        };
        let email_verified = get(verified).is_some_and(|list| {
            list.split(['|', ';', ',', ' '])
                .any(|v| v.trim().eq_ignore_ascii_case(email))
        });
        let full = [get(first), get(last)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let name = Some(full)
            .filter(|n| !n.is_empty())
            .or_else(|| get(username).map(str::to_owned));
        let created_at = match get(created) {
            Some(value) => match parse_time(&json!(value)) {
                Some(at) => Some(at),
                None => {
                    failed.push(unreadable(
                        &file,
                        line,
                        Some(external_id.to_owned()),
                        format!("`created_at` {value:?} is neither RFC 3339 nor Unix milliseconds"),
                    ));
                    continue;
                }
            },
            None => None,
        };
        users.push(SourceUser {
            file: Arc::clone(&file),
            line,
            external_id: external_id.to_owned(),
            email: email.to_owned(),
            email_verified,
            name,
            created_at,
            password: SourcePassword::classify(get(digest).unwrap_or_default(), get(hasher)),
            google_subjects: Vec::new(),
        });
    }
    Ok((users, failed))
}

/// An item of a JSON file with its line, or why the line is not JSON.
type Item = (u64, Result<Value, String>);

/// The JSON values of a file that holds one JSON document or JSON lines; an array is its
/// items, an object with a `data` array (a page of Clerk's Backend API) is those items.
/// Returns each item with its line (for a single document, its position in it).
fn json_items(path: &Path) -> Result<Vec<Item>, SourceError> {
    let text = read(path)?;
    let flatten = |line: u64, value: Value, out: &mut Vec<(u64, Result<Value, String>)>| match value
    {
        Value::Array(items) => out.extend(items.into_iter().map(|v| (line, Ok(v)))),
        Value::Object(mut object) if object.get("data").is_some_and(Value::is_array) => {
            if let Some(Value::Array(items)) = object.remove("data") {
                out.extend(items.into_iter().map(|v| (line, Ok(v))));
            }
        }
        other => out.push((line, Ok(other))),
    };
    let mut out = Vec::new();
    if let Ok(whole) = serde_json::from_str::<Value>(&text) {
        // One document: its items are numbered by their position in it.
        flatten(1, whole, &mut out);
        for (i, (line, _)) in out.iter_mut().enumerate() {
            *line = i as u64 + 1;
        }
        return Ok(out);
    }
    for (i, line) in text.lines().enumerate() {
        let number = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value) => flatten(number, value, &mut out),
            Err(err) => out.push((number, Err(format!("not JSON: {err}")))),
        }
    }
    Ok(out)
}

fn str_field<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Reads Auth0's bulk user export (NDJSON: `user_id`, `email`, `email_verified`, `name`,
/// `created_at`, `identities`), joined with its password hash export (JSON lines with
/// `_id.$oid`, `email`, `passwordHash`) when given. Lines that cannot be read are returned as
/// failed report lines.
///
/// # Errors
/// A file that cannot be read.
pub fn read_auth0(
    users_path: &Path,
    hashes_path: Option<&Path>,
) -> Result<(Vec<SourceUser>, Vec<ReportLine>), SourceError> {
    let file = file_name(users_path);
    let mut hashes: HashMap<String, String> = HashMap::new();
    if let Some(path) = hashes_path {
        for (_, item) in json_items(path)? {
            let Ok(item) = item else { continue };
            let Some(hash) = str_field(&item, "/passwordHash") else {
                continue;
            };
            if let Some(oid) = str_field(&item, "/_id/$oid").or_else(|| str_field(&item, "/_id")) {
                hashes.insert(format!("oid:{oid}"), hash.to_owned());
            }
            if let Some(email) = str_field(&item, "/email") {
                hashes.insert(format!("email:{}", email.to_lowercase()), hash.to_owned());
            }
        }
    }
    let mut users = Vec::new();
    let mut failed = Vec::new();
    for (line, item) in json_items(users_path)? {
        let item = match item {
            Ok(item) => item,
            Err(why) => {
                failed.push(unreadable(&file, line, None, why));
                continue;
            }
        };
        let Some(external_id) = str_field(&item, "/user_id") else {
            failed.push(unreadable(&file, line, None, "no `user_id`".to_owned()));
            continue;
        };
        let Some(email) = str_field(&item, "/email") else {
            failed.push(unreadable(
                &file,
                line,
                Some(external_id.to_owned()),
                "no `email`".to_owned(),
            ));
            continue;
        };
        let name = str_field(&item, "/name")
            .filter(|n| *n != email)
            .map(str::to_owned)
            .or_else(|| {
                let full = [
                    str_field(&item, "/given_name"),
                    str_field(&item, "/family_name"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
                Some(full).filter(|n| !n.is_empty())
            });
        let created_at = item.get("created_at").and_then(parse_time);
        let mut google_subjects: Vec<String> = item
            .get("identities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|identity| str_field(identity, "/provider") == Some("google-oauth2"))
            .filter_map(|identity| match identity.get("user_id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        if google_subjects.is_empty()
            && let Some(subject) = external_id.strip_prefix("google-oauth2|")
        {
            google_subjects.push(subject.to_owned());
        }
        let oid = external_id.strip_prefix("auth0|").unwrap_or(external_id);
        let digest = hashes
            .get(&format!("oid:{oid}"))
            .or_else(|| hashes.get(&format!("email:{}", email.to_lowercase())));
        users.push(SourceUser {
            file: Arc::clone(&file),
            line,
            external_id: external_id.to_owned(),
            email: email.to_owned(),
            email_verified: item
                .get("email_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            name,
            created_at,
            password: digest.map_or(SourcePassword::None, |d| SourcePassword::classify(d, None)),
            google_subjects,
        });
    }
    Ok((users, failed))
}

/// An organization as exported (Clerk's Backend API `Organization`).
#[derive(Debug, Clone)]
pub struct SourceOrg {
    /// The file.
    pub file: Arc<str>,
    /// The line.
    pub line: u64,
    /// `id`.
    pub external_id: String,
    /// `name`.
    pub name: String,
    /// `slug` (made from the name and id when missing).
    pub slug: String,
    /// `created_at`.
    pub created_at: Option<OffsetDateTime>,
    /// `created_by`: the creator's user id, who becomes the owner.
    pub created_by: Option<String>,
}

/// A membership as exported (Clerk's Backend API `OrganizationMembership`).
#[derive(Debug, Clone)]
pub struct SourceMembership {
    /// The file.
    pub file: Arc<str>,
    /// The line.
    pub line: u64,
    /// `organization.id`.
    pub org: String,
    /// `public_user_data.user_id`.
    pub user: String,
    /// `role` (`org:admin`, `org:member`, or a custom `org:…`).
    pub role: String,
    /// `created_at`.
    pub created_at: Option<OffsetDateTime>,
}

fn failed_line(
    kind: &'static str,
    file: &str,
    line: u64,
    id: Option<String>,
    why: String,
) -> ReportLine {
    ReportLine {
        kind,
        file: file.to_owned(),
        line,
        external_id: id,
        outcome: Outcome::Failed,
        note: Some(why),
    }
}

/// A slug from a name: lower-case ASCII letters and digits, dashes between words.
fn slugify(name: &str, id: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let tail: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .rev()
        .take(6)
        .collect::<String>()
        .chars()
        .rev()
        .collect::<String>()
        .to_ascii_lowercase();
    format!("{}-{tail}", slug.trim_end_matches('-'))
}

/// Reads Clerk's organizations (`GET /v1/organizations` pages, or their `data` items).
///
/// # Errors
/// A file that cannot be read.
pub fn read_clerk_orgs(path: &Path) -> Result<(Vec<SourceOrg>, Vec<ReportLine>), SourceError> {
    let file = file_name(path);
    let mut orgs = Vec::new();
    let mut failed = Vec::new();
    for (line, item) in json_items(path)? {
        let item = match item {
            Ok(item) => item,
            Err(why) => {
                failed.push(failed_line("organization", &file, line, None, why));
                continue;
            }
        };
        let (Some(id), Some(name)) = (str_field(&item, "/id"), str_field(&item, "/name")) else {
            failed.push(failed_line(
                "organization",
                &file,
                line,
                str_field(&item, "/id").map(str::to_owned),
                "an organization needs `id` and `name`".to_owned(),
            ));
            continue;
        };
        orgs.push(SourceOrg {
            file: Arc::clone(&file),
            line,
            external_id: id.to_owned(),
            name: name.to_owned(),
            slug: str_field(&item, "/slug").map_or_else(|| slugify(name, id), str::to_owned),
            created_at: item.get("created_at").and_then(parse_time),
            created_by: str_field(&item, "/created_by").map(str::to_owned),
        });
    }
    Ok((orgs, failed))
}

/// Reads Clerk's memberships (`GET /v1/organizations/{id}/memberships` pages, or their items).
///
/// # Errors
/// A file that cannot be read.
pub fn read_clerk_memberships(
    path: &Path,
) -> Result<(Vec<SourceMembership>, Vec<ReportLine>), SourceError> {
    let file = file_name(path);
    let mut memberships = Vec::new();
    let mut failed = Vec::new();
    for (line, item) in json_items(path)? {
        let item = match item {
            Ok(item) => item,
            Err(why) => {
                failed.push(failed_line("membership", &file, line, None, why));
                continue;
            }
        };
        let org = str_field(&item, "/organization/id");
        let user = str_field(&item, "/public_user_data/user_id");
        let role = str_field(&item, "/role");
        let (Some(org), Some(user), Some(role)) = (org, user, role) else {
            failed.push(failed_line(
                "membership",
                &file,
                line,
                str_field(&item, "/id").map(str::to_owned),
                "a membership needs `organization.id`, `public_user_data.user_id` and `role`"
                    .to_owned(),
            ));
            continue;
        };
        memberships.push(SourceMembership {
            file: Arc::clone(&file),
            line,
            org: org.to_owned(),
            user: user.to_owned(),
            role: role.to_owned(),
            created_at: item.get("created_at").and_then(parse_time),
        });
    }
    Ok((memberships, failed))
}

/// How the provider's role names map onto ours.
#[derive(Debug, Clone)]
pub struct RoleMap(BTreeMap<String, Role>);

impl Default for RoleMap {
    fn default() -> Self {
        Self(BTreeMap::from([
            ("org:admin".to_owned(), Role::ADMIN),
            ("org:member".to_owned(), Role::MEMBER),
            ("admin".to_owned(), Role::ADMIN),
            ("basic_member".to_owned(), Role::MEMBER),
        ]))
    }
}

impl RoleMap {
    /// The defaults, with the entries of a JSON object (`{"org:billing": "billing"}`) added
    /// or replacing them.
    ///
    /// # Errors
    /// A file that cannot be read, is not such an object, or names an invalid role.
    pub fn from_file(path: &Path) -> Result<Self, SourceError> {
        let format = |message: String| SourceError::Format {
            file: path.display().to_string(),
            message,
        };
        let value: Value =
            serde_json::from_str(&read(path)?).map_err(|e| format(format!("not JSON: {e}")))?;
        let Value::Object(entries) = value else {
            return Err(format(
                "a role map is a JSON object of role names".to_owned(),
            ));
        };
        let mut map = Self::default();
        for (from, to) in entries {
            let Some(to) = to.as_str() else {
                return Err(format(format!("{from:?}: the role must be a string")));
            };
            let role =
                Role::new(to.to_owned()).map_err(|e| format(format!("{from:?} -> {to:?}: {e}")))?;
            map.0.insert(from, role);
        }
        Ok(map)
    }

    /// Our role for the provider's `role`.
    #[must_use]
    pub fn get(&self, role: &str) -> Option<&Role> {
        self.0.get(role)
    }
}

/// Runs imports into a store.
#[derive(Debug, Clone)]
pub struct Importer {
    store: Arc<dyn AuthStore>,
    operator: String,
    source: &'static str,
    dry_run: bool,
    jobs: usize,
    roles: RoleMap,
}

impl Importer {
    /// An importer into `store` by `operator` (written into the audit events) of data from
    /// `source` (`clerk`, `auth0`).
    #[must_use]
    pub fn new(store: Arc<dyn AuthStore>, operator: &str, source: &'static str) -> Self {
        Self {
            store,
            operator: operator.to_owned(),
            source,
            dry_run: false,
            jobs: 8,
            roles: RoleMap::default(),
        }
    }

    /// Writes nothing; the report says what would happen.
    #[must_use]
    pub const fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// How many users are imported at once (default 8; at least 1).
    #[must_use]
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// The role map for memberships.
    #[must_use]
    pub fn roles(mut self, roles: RoleMap) -> Self {
        self.roles = roles;
        self
    }

    fn audit(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        org_id: Option<OrgId>,
        data: Value,
    ) -> AuditEvent {
        let mut event = AuditEvent {
            user_id,
            org_id,
            data: json!({ "operator": self.operator, "source": self.source }),
            ..AuditEvent::new(kind, now())
        };
        if let (Some(object), Value::Object(extra)) = (event.data.as_object_mut(), data) {
            object.extend(extra);
        }
        event
    }

    /// Imports `users` (skipping those already there), `progress` told after each; returns
    /// one report line per user, in input order.
    ///
    /// Users are imported `jobs` at a time. A line that repeats an earlier line's id or email
    /// waits until the first pass is done, so it is compared with what that line wrote (and
    /// comes out unchanged, updated, or refused for the taken email), never raced with it; a
    /// dry run, which writes nothing to compare with, reports it as a repeat.
    pub async fn import_users(
        &self,
        users: Vec<SourceUser>,
        progress: impl Fn() + Send + Sync + 'static,
    ) -> Vec<ReportLine> {
        let progress: Arc<dyn Fn() + Send + Sync> = Arc::new(progress);
        let total = users.len();
        let mut first: HashMap<String, u64> = HashMap::new();
        let mut now = Vec::new();
        let mut later = Vec::new();
        for (index, user) in users.into_iter().enumerate() {
            let keys = [
                format!("id:{}", user.external_id),
                format!("email:{}", user.email.trim().to_lowercase()),
            ];
            match keys.iter().find_map(|k| first.get(k).copied()) {
                Some(line) => later.push((index, user, line)),
                None => {
                    for key in keys {
                        first.insert(key, user.line);
                    }
                    now.push((index, user));
                }
            }
        }
        let mut lines: Vec<Option<ReportLine>> = vec![None; total];
        self.run_pass(now, &progress, &mut lines).await;
        if self.dry_run {
            for (index, user, line) in later {
                lines[index] = Some(ReportLine {
                    kind: "user",
                    file: user.file.to_string(),
                    line: user.line,
                    external_id: Some(user.external_id),
                    outcome: Outcome::Unchanged,
                    note: Some(format!("repeats the id or email of line {line}")),
                });
                progress();
            }
        } else {
            let later = later
                .into_iter()
                .map(|(index, user, _)| (index, user))
                .collect();
            self.run_pass(later, &progress, &mut lines).await;
        }
        lines.into_iter().flatten().collect()
    }

    async fn run_pass(
        &self,
        users: Vec<(usize, SourceUser)>,
        progress: &Arc<dyn Fn() + Send + Sync>,
        lines: &mut [Option<ReportLine>],
    ) {
        let semaphore = Arc::new(Semaphore::new(self.jobs));
        let mut tasks = JoinSet::new();
        let mut record = |joined: Result<(usize, ReportLine), tokio::task::JoinError>| match joined
        {
            Ok((index, line)) => lines[index] = Some(line),
            Err(err) => tracing::error!(error = %err, "an import task failed"),
        };
        for (index, user) in users {
            // Finished tasks are collected as we go: a finished task's output stays in the
            // set until joined, and the whole input would be held there twice.
            while let Some(joined) = tasks.try_join_next() {
                record(joined);
            }
            let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
                break;
            };
            let this = self.clone();
            let progress = Arc::clone(progress);
            tasks.spawn(async move {
                let line = this.import_user(&user).await;
                drop(permit);
                progress();
                (index, line)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            record(joined);
        }
    }

    async fn import_user(&self, source: &SourceUser) -> ReportLine {
        let line = |outcome: Outcome, note: Option<String>| ReportLine {
            kind: "user",
            file: source.file.to_string(),
            line: source.line,
            external_id: Some(source.external_id.clone()),
            outcome,
            note,
        };
        match self.try_import_user(source).await {
            Ok((outcome, note)) => line(outcome, note),
            Err(why) => line(Outcome::Failed, Some(why)),
        }
    }

    async fn try_import_user(
        &self,
        source: &SourceUser,
    ) -> Result<(Outcome, Option<String>), String> {
        if !keystead::model::is_valid_external_id(&source.external_id) {
            return Err("the id is not 1 to 255 visible ASCII characters".to_owned());
        }
        let email = Email::parse(&source.email)
            .map_err(|e| format!("the email {:?} is invalid: {e}", source.email))?;
        let name = source
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(200).collect::<String>());
        let store_error = |err: StoreError| match err {
            StoreError::Conflict(Conflict::Email) => {
                "an account with this email exists that was not imported from this id".to_owned()
            }
            StoreError::Conflict(Conflict::ExternalAccount) => {
                "its Google identity is linked to another user".to_owned()
            }
            other => format!("the store refused it: {other}"),
        };
        if let Some(existing) = self
            .store
            .user_by_external_id(&source.external_id)
            .await
            .map_err(store_error)?
        {
            return self
                .update_user(existing, name, source)
                .await
                .map_err(store_error);
        }
        let (password_hash, note) = match &source.password {
            SourcePassword::Digest(digest) => (Some(digest.clone()), None),
            SourcePassword::Unsupported(why) => (
                None,
                Some(format!(
                    "{RESET_REQUIRED}: {why}; imported without a password"
                )),
            ),
            SourcePassword::None if source.google_subjects.is_empty() => (
                None,
                Some(format!(
                    "{RESET_REQUIRED}: the export has no password for this user"
                )),
            ),
            SourcePassword::None => (None, None),
        };
        let now = now();
        let created_at = source.created_at.unwrap_or(now);
        let id = UserId::new();
        let mut subjects = source.google_subjects.clone();
        subjects.dedup();
        let links: Vec<ExternalAccount> = subjects
            .iter()
            .take(1)
            .map(|subject| ExternalAccount {
                id: ExternalAccountId::new(),
                user_id: id,
                provider: "google".to_owned(),
                issuer: GOOGLE_ISSUER.to_owned(),
                subject: subject.clone(),
                email: Some(email.as_str().to_owned()),
                email_verified: source.email_verified,
                created_at,
                last_used_at: None,
            })
            .collect();
        let new = NewUser {
            user: User {
                id,
                email,
                name,
                email_verified_at: source.email_verified.then_some(created_at),
                created_at,
                external_id: Some(source.external_id.clone()),
                disabled_at: None,
            },
            password_hash,
        };
        if self.dry_run {
            if self
                .store
                .user_by_email(&new.user.email)
                .await
                .map_err(store_error)?
                .is_some()
            {
                return Err(store_error(StoreError::Conflict(Conflict::Email)));
            }
            return Ok((Outcome::Imported, note));
        }
        match self.store.import_user(&new, &links).await {
            Ok(user) => {
                keystead::audit::record(
                    &*self.store,
                    &self.audit(
                        AuditKind::UserImported,
                        Some(user.id),
                        None,
                        json!({
                            "external_id": source.external_id,
                            "line": source.line,
                            "password": new.password_hash.is_some(),
                        }),
                    ),
                )
                .await;
                Ok((Outcome::Imported, note))
            }
            // The same id twice in the input, imported by another task meanwhile.
            Err(StoreError::Conflict(Conflict::UserExternalId)) => {
                let existing = self
                    .store
                    .user_by_external_id(&source.external_id)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| "its id was taken and then released meanwhile".to_owned())?;
                self.update_user(existing, new.user.name, source)
                    .await
                    .map_err(store_error)
            }
            Err(err) => Err(store_error(err)),
        }
    }

    /// A user found by their external id: the name and verification follow the export; the
    /// password and email are theirs now (they may have changed them here) and stay.
    async fn update_user(
        &self,
        existing: User,
        name: Option<String>,
        source: &SourceUser,
    ) -> Result<(Outcome, Option<String>), StoreError> {
        let name_changes = name.is_some() && existing.name != name;
        let verify = source.email_verified && !existing.email_verified();
        if !name_changes && !verify {
            return Ok((Outcome::Unchanged, None));
        }
        if self.dry_run {
            return Ok((Outcome::Updated, None));
        }
        if name_changes {
            self.store
                .set_user_name(existing.id, name.as_deref())
                .await?;
        }
        if verify {
            self.store
                .mark_email_verified(
                    existing.id,
                    source.created_at.unwrap_or(existing.created_at),
                )
                .await?;
        }
        keystead::audit::record(
            &*self.store,
            &self.audit(
                AuditKind::UserImportUpdated,
                Some(existing.id),
                None,
                json!({ "external_id": source.external_id, "line": source.line }),
            ),
        )
        .await;
        Ok((Outcome::Updated, None))
    }

    /// Imports organizations and their memberships (after the users: members are found by
    /// their external ids). Returns one report line per organization and per membership.
    pub async fn import_orgs(
        &self,
        orgs: Vec<SourceOrg>,
        memberships: Vec<SourceMembership>,
    ) -> Vec<ReportLine> {
        let mut by_org: HashMap<String, Vec<SourceMembership>> = HashMap::new();
        let mut lines = Vec::new();
        let known: std::collections::HashSet<&str> =
            orgs.iter().map(|o| o.external_id.as_str()).collect();
        for membership in memberships {
            if known.contains(membership.org.as_str()) {
                by_org
                    .entry(membership.org.clone())
                    .or_default()
                    .push(membership);
            } else {
                lines.push(failed_line(
                    "membership",
                    &membership.file,
                    membership.line,
                    Some(format!("{}/{}", membership.org, membership.user)),
                    format!(
                        "organization {} is not in the organizations file",
                        membership.org
                    ),
                ));
            }
        }
        for org in orgs {
            let members = by_org.remove(&org.external_id).unwrap_or_default();
            lines.extend(self.import_org(&org, members).await);
        }
        lines
    }

    async fn import_org(
        &self,
        source: &SourceOrg,
        members: Vec<SourceMembership>,
    ) -> Vec<ReportLine> {
        let mut lines = Vec::new();
        let org_line = |outcome: Outcome, note: Option<String>| ReportLine {
            kind: "organization",
            file: source.file.to_string(),
            line: source.line,
            external_id: Some(source.external_id.clone()),
            outcome,
            note,
        };
        if !keystead::model::is_valid_external_id(&source.external_id) {
            lines.push(org_line(
                Outcome::Failed,
                Some("the id is not 1 to 255 visible ASCII characters".to_owned()),
            ));
            return lines;
        }
        // Members: our user and role for each, or a failed line.
        let mut resolved: Vec<(SourceMembership, User, Role)> = Vec::new();
        for membership in members {
            let fail = |why: String| {
                failed_line(
                    "membership",
                    &membership.file,
                    membership.line,
                    Some(format!("{}/{}", membership.org, membership.user)),
                    why,
                )
            };
            let Some(role) = self.roles.get(&membership.role).cloned() else {
                lines.push(fail(format!(
                    "role {:?} has no mapping: add it to the role map (--role-map)",
                    membership.role
                )));
                continue;
            };
            match self.store.user_by_external_id(&membership.user).await {
                Ok(Some(user)) => resolved.push((membership, user, role)),
                Ok(None) => lines.push(fail(format!(
                    "user {} was not imported (or its line failed)",
                    membership.user
                ))),
                Err(err) => lines.push(fail(format!("the store refused it: {err}"))),
            }
        }
        resolved.sort_by_key(|(m, _, _)| (m.created_at, m.line));

        let existing = match self
            .store
            .organization_by_external_id(&source.external_id)
            .await
        {
            Ok(existing) => existing,
            Err(err) => {
                lines.push(org_line(
                    Outcome::Failed,
                    Some(format!("the store refused it: {err}")),
                ));
                return lines;
            }
        };
        let (org_id, org_outcome, owner) = if let Some(org) = existing {
            let outcome = if org.name == source.name {
                Outcome::Unchanged
            } else if self.dry_run {
                Outcome::Updated
            } else {
                match self.store.rename_organization(org.id, &source.name).await {
                    Ok(_) => Outcome::Updated,
                    Err(err) => {
                        lines.push(org_line(
                            Outcome::Failed,
                            Some(format!("rename refused: {err}")),
                        ));
                        return lines;
                    }
                }
            };
            (org.id, outcome, None)
        } else {
            // The owner: the creator when they are an admin member, else the earliest admin.
            let admins = || {
                resolved
                    .iter()
                    .filter(|(_, _, r)| *r == Role::ADMIN || r.is_owner())
            };
            let owner = admins()
                .find(|(m, _, _)| Some(&m.user) == source.created_by.as_ref())
                .or_else(|| admins().next())
                .map(|(m, u, _)| (m.user.clone(), u.id));
            let Some((owner_external, owner_id)) = owner else {
                lines.push(org_line(
                    Outcome::Failed,
                    Some(
                        "no imported admin to be its owner (an organization needs one)".to_owned(),
                    ),
                ));
                return lines;
            };
            let org = Organization {
                id: OrgId::new(),
                name: source.name.clone(),
                slug: source.slug.clone(),
                created_at: source.created_at.unwrap_or_else(now),
                external_id: Some(source.external_id.clone()),
                mfa_required: false,
            };
            if !self.dry_run {
                match self.store.create_organization(&org, owner_id).await {
                    Ok(_) => {
                        keystead::audit::record(
                            &*self.store,
                            &self.audit(
                                AuditKind::OrgImported,
                                Some(owner_id),
                                Some(org.id),
                                json!({ "external_id": source.external_id, "line": source.line }),
                            ),
                        )
                        .await;
                    }
                    Err(err) => {
                        let why = match err {
                            StoreError::Conflict(Conflict::OrgSlug) => {
                                format!("the slug {:?} is taken by another organization", org.slug)
                            }
                            other => format!("the store refused it: {other}"),
                        };
                        lines.push(org_line(Outcome::Failed, Some(why)));
                        return lines;
                    }
                }
            }
            (org.id, Outcome::Imported, Some(owner_external))
        };
        lines.push(org_line(org_outcome, None));

        for (membership, user, role) in resolved {
            let membership_line = |outcome: Outcome, note: Option<String>| ReportLine {
                kind: "membership",
                file: membership.file.to_string(),
                line: membership.line,
                external_id: Some(format!("{}/{}", membership.org, membership.user)),
                outcome,
                note,
            };
            if owner.as_deref() == Some(membership.user.as_str()) {
                lines.push(membership_line(
                    org_outcome,
                    Some("owner (the organization's creator or earliest admin)".to_owned()),
                ));
                continue;
            }
            if self.dry_run && org_outcome == Outcome::Imported {
                lines.push(membership_line(Outcome::Imported, None));
                continue;
            }
            let outcome = self
                .import_membership(org_id, &user, &role, membership.created_at)
                .await;
            match outcome {
                Ok(outcome) => {
                    if outcome != Outcome::Unchanged && !self.dry_run {
                        keystead::audit::record(
                            &*self.store,
                            &self.audit(
                                AuditKind::MembershipImported,
                                Some(user.id),
                                Some(org_id),
                                json!({ "role": role.as_str(), "line": membership.line }),
                            ),
                        )
                        .await;
                    }
                    lines.push(membership_line(outcome, None));
                }
                Err(why) => lines.push(membership_line(Outcome::Failed, Some(why))),
            }
        }
        lines
    }

    async fn import_membership(
        &self,
        org_id: OrgId,
        user: &User,
        role: &Role,
        joined_at: Option<OffsetDateTime>,
    ) -> Result<Outcome, String> {
        let current = self
            .store
            .membership(org_id, user.id)
            .await
            .map_err(|e| format!("the store refused it: {e}"))?;
        match current {
            // An owner here stays one: the import never demotes an owner.
            Some(m) if m.role == *role || m.role.is_owner() => Ok(Outcome::Unchanged),
            Some(_) if self.dry_run => Ok(Outcome::Updated),
            Some(m) => self
                .store
                .change_role_if(org_id, user.id, &m.role, role)
                .await
                .map(|_| Outcome::Updated)
                .map_err(|e| format!("the role change was refused: {e}")),
            None if self.dry_run => Ok(Outcome::Imported),
            None => self
                .store
                .add_member(&Membership {
                    org_id,
                    user_id: user.id,
                    role: role.clone(),
                    joined_at: joined_at.unwrap_or_else(now),
                })
                .await
                .map(|()| Outcome::Imported)
                .map_err(|e| format!("the store refused it: {e}")),
        }
    }
}

/// The time now, in whole microseconds as stores keep them.
fn now() -> OffsetDateTime {
    keystead::Clock::now(&keystead::SystemClock)
}

#[cfg(test)]
mod tests {
    use super::{SourcePassword, bcrypt_cost, slugify};
    use keystead::SecretString;

    #[test]
    fn digests_are_classified_by_hasher_and_shape() {
        let bcrypt = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        assert_eq!(bcrypt_cost(bcrypt), Some(10));
        assert_eq!(
            SourcePassword::classify(bcrypt, Some("bcrypt")),
            SourcePassword::Digest(SecretString::new(bcrypt.to_owned()))
        );
        assert_eq!(
            SourcePassword::classify(bcrypt, None),
            SourcePassword::Digest(SecretString::new(bcrypt.to_owned()))
        );
        let expensive = bcrypt.replace("$10$", "$17$");
        assert!(matches!(
            SourcePassword::classify(&expensive, Some("bcrypt")),
            SourcePassword::Unsupported(why) if why.contains("cost 17")
        ));
        assert!(matches!(
            SourcePassword::classify("$2b$10$short", Some("bcrypt")),
            SourcePassword::Unsupported(_)
        ));
        assert!(matches!(
            SourcePassword::classify("pbkdf2_sha256$260000$salt$hash", Some("pbkdf2_sha256")),
            SourcePassword::Unsupported(why) if why.contains("pbkdf2_sha256")
        ));
        assert_eq!(
            SourcePassword::classify("  ", Some("bcrypt")),
            SourcePassword::None
        );
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$q9rZNRMWXXNNMz5ZMK1y1Fq6QIwDtHmNBTV7JpGHH0Y";
        assert_eq!(
            SourcePassword::classify(argon, Some("argon2id")),
            SourcePassword::Digest(SecretString::new(argon.to_owned()))
        );
    }

    #[test]
    fn slugs_are_made_from_the_name_and_id() {
        assert_eq!(slugify("Acme, Inc.", "org_2bQxyz9K"), "acme-inc-qxyz9k");
        assert_eq!(slugify("Ünïcode Café", "org_1"), "n-code-caf-org1");
    }
}
