-- Second factors (TOTP authenticators, recovery codes, passkeys), the short-lived state of
-- multi-step flows (a sign-in waiting for its second factor, WebAuthn ceremonies), when a
-- session last proved who its user is (step-up), and an organization's MFA policy.

-- Sessions made before this migration count as authenticated when they began.
ALTER TABLE {t}sessions ADD COLUMN authenticated_at timestamptz;
UPDATE {t}sessions SET authenticated_at = created_at;
ALTER TABLE {t}sessions ALTER COLUMN authenticated_at SET NOT NULL;

ALTER TABLE {t}organizations ADD COLUMN mfa_required boolean NOT NULL DEFAULT false;

-- One TOTP authenticator per user. The secret is sealed by the library (the store never
-- holds the key); `last_used_step` makes each code usable once, on every instance.
CREATE TABLE {t}totp_factors (
    user_id           uuid        PRIMARY KEY REFERENCES {t}users (id) ON DELETE CASCADE,
    secret_ciphertext bytea       NOT NULL,
    created_at        timestamptz NOT NULL,
    confirmed_at      timestamptz,
    last_used_step    bigint,
    CONSTRAINT totp_factors_secret_ciphertext_check CHECK (octet_length(secret_ciphertext) > 0)
);

-- Recovery codes, by SHA-256 of the code: each is usable once.
CREATE TABLE {t}recovery_codes (
    user_id    uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz,
    CONSTRAINT recovery_codes_pkey PRIMARY KEY (user_id, code_hash),
    CONSTRAINT recovery_codes_code_hash_check CHECK (octet_length(code_hash) = 32)
);

-- WebAuthn credentials. A credential id is registered once, across users.
CREATE TABLE {t}passkeys (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    credential_id   bytea       NOT NULL,
    name            text        NOT NULL,
    credential      text        NOT NULL,
    backup_eligible boolean     NOT NULL,
    backup_state    boolean     NOT NULL,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz,
    CONSTRAINT passkeys_credential_id_key UNIQUE (credential_id),
    CONSTRAINT passkeys_credential_id_check CHECK (octet_length(credential_id) > 0),
    CONSTRAINT passkeys_name_check CHECK (char_length(name) BETWEEN 1 AND 100)
);

CREATE INDEX passkeys_user_id_idx ON {t}passkeys (user_id, created_at);

-- State between two steps of a flow, found by SHA-256 of a token the client holds, taken
-- (deleted) once. Rows go with their user; expired rows are deleted by the library.
CREATE TABLE {t}challenges (
    id         uuid        PRIMARY KEY,
    kind       text        NOT NULL,
    token_hash bytea       NOT NULL,
    user_id    uuid        REFERENCES {t}users (id) ON DELETE CASCADE,
    data       text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT challenges_token_hash_key UNIQUE (token_hash),
    CONSTRAINT challenges_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT challenges_kind_check
        CHECK (kind IN ('mfa_sign_in', 'passkey_registration', 'passkey_authentication'))
);

CREATE INDEX challenges_user_id_idx ON {t}challenges (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX challenges_expires_at_idx ON {t}challenges (expires_at);
