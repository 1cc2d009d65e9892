-- The keystead-sqlite schema.
--
-- Conventions:
-- - Ids are TEXT: hyphenated, lower-case UUIDs (36 characters).
-- - Times are INTEGER: microseconds since the Unix epoch, UTC. Comparisons and ordering are
--   numeric and exact.
-- - Token hashes are BLOB: the 32 bytes of a SHA-256.
-- - Tables are STRICT, so a column only ever holds its declared type.
-- - Invariants live here, not only in Rust: unique emails (case-insensitively), memberships,
--   slugs and token hashes; foreign keys with the cascades the store traits document; CHECKs
--   on enumerations and names; and triggers that keep every organization an owner.

CREATE TABLE {t}users (
    id                TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    -- keystead normalizes (lower-cases) emails; NOCASE makes the uniqueness hold even for
    -- rows written by other means.
    email             TEXT    NOT NULL COLLATE NOCASE CHECK (length(email) BETWEEN 3 AND 254),
    name              TEXT,
    email_verified_at INTEGER,
    created_at        INTEGER NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
) STRICT;

CREATE TABLE {t}password_credentials (
    user_id    TEXT    NOT NULL PRIMARY KEY REFERENCES {t}users (id) ON DELETE CASCADE,
    hash       TEXT    NOT NULL CHECK (length(hash) > 0),
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE {t}external_accounts (
    id             TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    user_id        TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    provider       TEXT    NOT NULL CHECK (length(provider) > 0),
    issuer         TEXT    NOT NULL CHECK (length(issuer) > 0),
    subject        TEXT    NOT NULL CHECK (length(subject) > 0),
    email          TEXT,
    email_verified INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER,
    CONSTRAINT external_accounts_issuer_subject_key UNIQUE (issuer, subject)
) STRICT;

CREATE INDEX {t}external_accounts_user_idx ON {t}external_accounts (user_id, created_at);

CREATE TABLE {t}organizations (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    name       TEXT    NOT NULL,
    slug       TEXT    NOT NULL CHECK (length(slug) > 0),
    created_at INTEGER NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug)
) STRICT;

CREATE TABLE {t}memberships (
    org_id    TEXT    NOT NULL REFERENCES {t}organizations (id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    -- Role names as keystead's Role::new accepts them.
    role      TEXT    NOT NULL
        CHECK (length(role) BETWEEN 1 AND 64 AND role NOT GLOB '*[^a-z0-9_-]*'),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX {t}memberships_user_idx ON {t}memberships (user_id, joined_at);
CREATE INDEX {t}memberships_owner_idx ON {t}memberships (org_id) WHERE role = 'owner';

-- An organization keeps an owner. The store checks this in its (single-writer, BEGIN
-- IMMEDIATE) transactions to answer LastOwner; these triggers hold the line for any other
-- writer. Deleting the organization itself (its memberships go by cascade) is allowed.
CREATE TRIGGER {t}memberships_keep_owner_on_update
BEFORE UPDATE OF role, org_id ON {t}memberships
WHEN old.role = 'owner'
    AND (new.role <> 'owner' OR new.org_id <> old.org_id)
    AND NOT EXISTS (
        SELECT 1 FROM {t}memberships
        WHERE org_id = old.org_id AND role = 'owner' AND user_id <> old.user_id
    )
BEGIN
    SELECT RAISE(ABORT, 'last_owner');
END;

CREATE TRIGGER {t}memberships_keep_owner_on_delete
BEFORE DELETE ON {t}memberships
WHEN old.role = 'owner'
    AND EXISTS (SELECT 1 FROM {t}organizations WHERE id = old.org_id)
    AND NOT EXISTS (
        SELECT 1 FROM {t}memberships
        WHERE org_id = old.org_id AND role = 'owner' AND user_id <> old.user_id
    )
BEGIN
    SELECT RAISE(ABORT, 'last_owner');
END;

CREATE TABLE {t}sessions (
    id                  TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    token_hash          BLOB    NOT NULL CHECK (length(token_hash) = 32),
    user_id             TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    active_org_id       TEXT    REFERENCES {t}organizations (id) ON DELETE SET NULL,
    user_agent          TEXT,
    ip                  TEXT,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
) STRICT;

CREATE INDEX {t}sessions_user_idx ON {t}sessions (user_id, created_at);
CREATE INDEX {t}sessions_active_org_idx ON {t}sessions (active_org_id) WHERE active_org_id IS NOT NULL;
CREATE INDEX {t}sessions_expires_idx ON {t}sessions (expires_at);
CREATE INDEX {t}sessions_absolute_expires_idx ON {t}sessions (absolute_expires_at);

CREATE TABLE {t}invitations (
    id          TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    org_id      TEXT    NOT NULL REFERENCES {t}organizations (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL COLLATE NOCASE CHECK (length(email) BETWEEN 3 AND 254),
    role        TEXT    NOT NULL
        CHECK (length(role) BETWEEN 1 AND 64 AND role NOT GLOB '*[^a-z0-9_-]*'),
    token_hash  BLOB    NOT NULL CHECK (length(token_hash) = 32),
    -- An invitation from a deleted user is void.
    invited_by  TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER,
    accepted_by TEXT    REFERENCES {t}users (id) ON DELETE SET NULL,
    revoked_at  INTEGER,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CHECK (accepted_by IS NULL OR accepted_at IS NOT NULL),
    CHECK (accepted_at IS NULL OR revoked_at IS NULL)
) STRICT;

CREATE INDEX {t}invitations_org_idx ON {t}invitations (org_id, created_at);
CREATE INDEX {t}invitations_invited_by_idx ON {t}invitations (invited_by);
CREATE INDEX {t}invitations_accepted_by_idx ON {t}invitations (accepted_by) WHERE accepted_by IS NOT NULL;

CREATE TABLE {t}one_time_tokens (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    purpose    TEXT    NOT NULL CHECK (purpose IN ('email_verification', 'password_reset')),
    user_id    TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    token_hash BLOB    NOT NULL CHECK (length(token_hash) = 32),
    email      TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    CONSTRAINT one_time_tokens_token_hash_key UNIQUE (token_hash)
) STRICT;

CREATE INDEX {t}one_time_tokens_user_idx ON {t}one_time_tokens (user_id, purpose);
CREATE INDEX {t}one_time_tokens_expires_idx ON {t}one_time_tokens (expires_at);

CREATE TABLE {t}api_tokens (
    id           TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    name         TEXT    NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    org_id       TEXT    NOT NULL REFERENCES {t}organizations (id) ON DELETE CASCADE,
    -- A JSON array of permission strings.
    scopes       TEXT    NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    -- Who created it. Deliberately no foreign key: deleting the creator must not delete (and
    -- so silently un-revoke) a token that still acts for `user_id`.
    created_by   TEXT    NOT NULL CHECK (length(created_by) = 36),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX {t}api_tokens_org_idx ON {t}api_tokens (org_id, created_at);
CREATE INDEX {t}api_tokens_user_idx ON {t}api_tokens (user_id, org_id);
CREATE INDEX {t}api_tokens_revoked_idx ON {t}api_tokens (expires_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE {t}audit_events (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (length(kind) > 0),
    actor_id   TEXT    REFERENCES {t}users (id) ON DELETE SET NULL,
    user_id    TEXT    REFERENCES {t}users (id) ON DELETE SET NULL,
    org_id     TEXT    REFERENCES {t}organizations (id) ON DELETE SET NULL,
    ip         TEXT,
    user_agent TEXT,
    data       TEXT    NOT NULL CHECK (json_valid(data))
) STRICT;

CREATE INDEX {t}audit_events_at_idx ON {t}audit_events (at, id);
CREATE INDEX {t}audit_events_user_idx ON {t}audit_events (user_id, at) WHERE user_id IS NOT NULL;
CREATE INDEX {t}audit_events_actor_idx ON {t}audit_events (actor_id, at) WHERE actor_id IS NOT NULL;
CREATE INDEX {t}audit_events_org_idx ON {t}audit_events (org_id, at) WHERE org_id IS NOT NULL;
