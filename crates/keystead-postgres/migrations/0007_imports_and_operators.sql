-- Moving in and operating (issue 18): the id a user or an organization had at the provider
-- it was imported from (unique, so the app's rows that hold it can be mapped), an operator's
-- disabling of an account, the old provider's sessions already swapped for ours during the
-- hand-off window, and reading the audit log by kind.
ALTER TABLE {t}users ADD COLUMN external_id text;
ALTER TABLE {t}users ADD COLUMN disabled_at timestamptz;
ALTER TABLE {t}users ADD CONSTRAINT users_external_id_key UNIQUE (external_id);
ALTER TABLE {t}users ADD CONSTRAINT users_external_id_check
    CHECK (octet_length(external_id) BETWEEN 1 AND 255);

ALTER TABLE {t}organizations ADD COLUMN external_id text;
ALTER TABLE {t}organizations ADD CONSTRAINT organizations_external_id_key UNIQUE (external_id);
ALTER TABLE {t}organizations ADD CONSTRAINT organizations_external_id_check
    CHECK (octet_length(external_id) BETWEEN 1 AND 255);

-- One row per old session (a hash of its issuer and `sid`) swapped for one of ours: each is
-- swapped once. Rows go with their user; the table can be emptied once the window closed.
CREATE TABLE {t}session_handoffs (
    key_hash bytea       PRIMARY KEY,
    user_id  uuid        NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL,
    CONSTRAINT session_handoffs_key_hash_check CHECK (octet_length(key_hash) = 32)
);
CREATE INDEX session_handoffs_user_id_idx ON {t}session_handoffs (user_id);

CREATE INDEX audit_events_kind_idx ON {t}audit_events (kind, at DESC, id DESC);
