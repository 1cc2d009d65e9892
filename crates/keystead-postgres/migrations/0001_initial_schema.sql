-- The initial schema of keystead-postgres.
--
-- Invariants live here, not only in Rust: one user per email (case-insensitively), one
-- membership per (organization, user), unique slugs, unique token hashes of exactly 32 bytes
-- (SHA-256), known token purposes, well-formed role names, and cascading deletes where the
-- store traits say a deletion takes other rows with it. Constraint names are part of the
-- store's contract: `PostgresStore` maps unique violations to conflicts by these names.
--
-- Times are `timestamptz` (microsecond precision), ids are UUID v7 made by the application.

CREATE TABLE {t}users (
    id                uuid        PRIMARY KEY,
    email             text        NOT NULL,
    name              text,
    email_verified_at timestamptz,
    created_at        timestamptz NOT NULL,
    CONSTRAINT users_email_length_check CHECK (octet_length(email) BETWEEN 3 AND 254)
);

-- The application normalizes emails to lower case; this index makes case-insensitive
-- uniqueness a guarantee of the schema, even for rows written by other tools.
CREATE UNIQUE INDEX users_email_lower_key ON {t}users (lower(email));

CREATE TABLE {t}password_credentials (
    user_id    uuid        PRIMARY KEY REFERENCES {t}users (id) ON DELETE CASCADE,
    hash       text        NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT password_credentials_hash_check CHECK (hash <> '')
);

CREATE TABLE {t}external_accounts (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    provider       text        NOT NULL,
    issuer         text        NOT NULL,
    subject        text        NOT NULL,
    email          text,
    email_verified boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    last_used_at   timestamptz,
    CONSTRAINT external_accounts_issuer_subject_key UNIQUE (issuer, subject)
);

CREATE INDEX external_accounts_user_id_idx ON {t}external_accounts (user_id, created_at);

CREATE TABLE {t}organizations (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    slug       text        NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug),
    CONSTRAINT organizations_slug_check CHECK (slug <> '')
);

CREATE TABLE {t}memberships (
    org_id    uuid        NOT NULL REFERENCES {t}organizations (id) ON DELETE CASCADE,
    user_id   uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    role      text        NOT NULL,
    joined_at timestamptz NOT NULL,
    CONSTRAINT memberships_pkey PRIMARY KEY (org_id, user_id),
    CONSTRAINT memberships_role_check CHECK (role ~ '^[a-z0-9_-]{1,64}$')
);

-- The user's organizations; and (partial) the owners of an organization, counted by the
-- last-owner rule.
CREATE INDEX memberships_user_id_idx ON {t}memberships (user_id, joined_at);
CREATE INDEX memberships_owners_idx ON {t}memberships (org_id) WHERE role = 'owner';

CREATE TABLE {t}sessions (
    id                  uuid        PRIMARY KEY,
    token_hash          bytea       NOT NULL,
    user_id             uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    active_org_id       uuid        REFERENCES {t}organizations (id) ON DELETE SET NULL,
    user_agent          text,
    ip                  text,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_token_hash_check CHECK (octet_length(token_hash) = 32)
);

-- Session by token hash is served by sessions_token_hash_key.
CREATE INDEX sessions_user_id_idx ON {t}sessions (user_id, created_at DESC);
CREATE INDEX sessions_active_org_id_idx ON {t}sessions (active_org_id) WHERE active_org_id IS NOT NULL;
CREATE INDEX sessions_expires_at_idx ON {t}sessions (expires_at);
CREATE INDEX sessions_absolute_expires_at_idx ON {t}sessions (absolute_expires_at);

CREATE TABLE {t}invitations (
    id          uuid        PRIMARY KEY,
    org_id      uuid        NOT NULL REFERENCES {t}organizations (id) ON DELETE CASCADE,
    email       text        NOT NULL,
    role        text        NOT NULL,
    token_hash  bytea       NOT NULL,
    -- An invitation made by a user who is deleted goes with them (it can no longer be
    -- attributed, so it must not be accepted).
    invited_by  uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid        REFERENCES {t}users (id) ON DELETE SET NULL,
    revoked_at  timestamptz,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT invitations_role_check CHECK (role ~ '^[a-z0-9_-]{1,64}$'),
    CONSTRAINT invitations_single_outcome_check CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);

-- Invitation by token hash is served by invitations_token_hash_key.
CREATE INDEX invitations_org_id_idx ON {t}invitations (org_id, created_at DESC);
CREATE INDEX invitations_invited_by_idx ON {t}invitations (invited_by);
CREATE INDEX invitations_accepted_by_idx ON {t}invitations (accepted_by) WHERE accepted_by IS NOT NULL;

CREATE TABLE {t}one_time_tokens (
    id         uuid        PRIMARY KEY,
    purpose    text        NOT NULL,
    user_id    uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    token_hash bytea       NOT NULL,
    email      text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CONSTRAINT one_time_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT one_time_tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT one_time_tokens_purpose_check
        CHECK (purpose IN ('email_verification', 'password_reset'))
);

-- One-time token by hash is served by one_time_tokens_token_hash_key.
CREATE INDEX one_time_tokens_user_id_purpose_idx ON {t}one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_expires_at_idx ON {t}one_time_tokens (expires_at);

CREATE TABLE {t}api_tokens (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL,
    user_id      uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    org_id       uuid        NOT NULL REFERENCES {t}organizations (id) ON DELETE CASCADE,
    scopes       text[]      NOT NULL DEFAULT '{}',
    -- Who created the token: a record of history, like an audit actor. No foreign key, so that
    -- deleting the creator neither deletes another member's token record (and with it the
    -- token's revocation state) nor is refused.
    created_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_tokens_scopes_check CHECK (array_position(scopes, NULL) IS NULL)
);

CREATE INDEX api_tokens_org_id_idx ON {t}api_tokens (org_id, created_at DESC);
CREATE INDEX api_tokens_user_id_idx ON {t}api_tokens (user_id);
-- The revocation list: revoked tokens not yet expired.
CREATE INDEX api_tokens_revoked_idx ON {t}api_tokens (expires_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE {t}audit_events (
    id         uuid        PRIMARY KEY,
    at         timestamptz NOT NULL,
    kind       text        NOT NULL,
    actor_id   uuid        REFERENCES {t}users (id) ON DELETE SET NULL,
    user_id    uuid        REFERENCES {t}users (id) ON DELETE SET NULL,
    org_id     uuid        REFERENCES {t}organizations (id) ON DELETE SET NULL,
    ip         text,
    user_agent text,
    data       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT audit_events_kind_check CHECK (kind <> '')
);

CREATE INDEX audit_events_at_idx ON {t}audit_events (at DESC, id DESC);
CREATE INDEX audit_events_user_id_idx ON {t}audit_events (user_id, at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX audit_events_actor_id_idx ON {t}audit_events (actor_id, at DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_org_id_idx ON {t}audit_events (org_id, at DESC) WHERE org_id IS NOT NULL;
