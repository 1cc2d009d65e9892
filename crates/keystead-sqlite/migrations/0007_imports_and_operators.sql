-- Moving in and operating (issue 18): the id a user or an organization had at the provider
-- it was imported from (unique, so the app's rows that hold it can be mapped), an operator's
-- disabling of an account, the old provider's sessions already swapped for ours during the
-- hand-off window, and reading the audit log by kind.
ALTER TABLE {t}users ADD COLUMN external_id TEXT
    CHECK (external_id IS NULL OR length(CAST(external_id AS BLOB)) BETWEEN 1 AND 255);
ALTER TABLE {t}users ADD COLUMN disabled_at INTEGER;
CREATE UNIQUE INDEX {t}users_external_id_key ON {t}users (external_id);

ALTER TABLE {t}organizations ADD COLUMN external_id TEXT
    CHECK (external_id IS NULL OR length(CAST(external_id AS BLOB)) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX {t}organizations_external_id_key ON {t}organizations (external_id);

-- One row per old session (a hash of its issuer and `sid`) swapped for one of ours: each is
-- swapped once. Rows go with their user; the table can be emptied once the window closed.
CREATE TABLE {t}session_handoffs (
    key_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(key_hash) = 32),
    user_id  TEXT    NOT NULL REFERENCES {t}users (id) ON DELETE CASCADE,
    at       INTEGER NOT NULL
) STRICT;
CREATE INDEX {t}session_handoffs_user_id_idx ON {t}session_handoffs (user_id);

CREATE INDEX {t}audit_events_kind_idx ON {t}audit_events (kind, at, id);
