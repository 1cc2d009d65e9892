-- Second factors (TOTP authenticators, recovery codes, passkeys), the short-lived state of
-- multi-step flows (a sign-in waiting for its second factor, WebAuthn ceremonies), when a
-- session last proved who its user is (step-up), and an organization's MFA policy.

-- SQLite adds a NOT NULL column only with a default; the store always writes it, and
-- sessions made before this migration count as authenticated when they began.
ALTER TABLE {t}sessions ADD COLUMN authenticated_at INTEGER NOT NULL DEFAULT 0;
UPDATE {t}sessions SET authenticated_at = created_at;

ALTER TABLE {t}organizations ADD COLUMN mfa_required INTEGER NOT NULL DEFAULT 0
    CHECK (mfa_required IN (0, 1));

-- One TOTP authenticator per user. The secret is sealed by the library (the store never
-- holds the key); `last_used_step` makes each code usable once.
CREATE TABLE {t}totp_factors (
    user_id           TEXT    NOT NULL PRIMARY KEY REFERENCES {t}users (id) ON DELETE CASCADE,
    secret_ciphertext BLOB    NOT NULL CHECK (length(secret_ciphertext) > 0),
    created_at        INTEGER NOT NULL,
    confirmed_at      INTEGER,
    last_used_step    INTEGER
) STRICT;

-- Recovery codes, by SHA-256 of the code: each is usable once.
CREATE TABLE {t}recovery_codes (
    user_id    TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL CHECK (length(code_hash) = 32),
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) STRICT, WITHOUT ROWID;

-- WebAuthn credentials. A credential id is registered once, across users.
CREATE TABLE {t}passkeys (
    id              TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    user_id         TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    credential_id   BLOB    NOT NULL CHECK (length(credential_id) > 0),
    name            TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    credential      TEXT    NOT NULL,
    backup_eligible INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    backup_state    INTEGER NOT NULL CHECK (backup_state IN (0, 1)),
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    CONSTRAINT passkeys_credential_id_key UNIQUE (credential_id)
) STRICT;

CREATE INDEX {t}passkeys_user_idx ON {t}passkeys (user_id, created_at);

-- State between two steps of a flow, found by SHA-256 of a token the client holds, taken
-- (deleted) once. Rows go with their user; expired rows are deleted by the library.
CREATE TABLE {t}challenges (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    kind       TEXT    NOT NULL
        CHECK (kind IN ('mfa_sign_in', 'passkey_registration', 'passkey_authentication')),
    token_hash BLOB    NOT NULL CHECK (length(token_hash) = 32),
    user_id    TEXT    REFERENCES {t}users (id) ON DELETE CASCADE,
    data       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CONSTRAINT challenges_token_hash_key UNIQUE (token_hash)
) STRICT;

CREATE INDEX {t}challenges_user_idx ON {t}challenges (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX {t}challenges_expires_idx ON {t}challenges (expires_at);
