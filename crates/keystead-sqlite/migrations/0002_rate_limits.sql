-- Rate limit state (keystead::rate_limit): one row per key, holding the key's theoretical
-- arrival time (GCRA). Keys are SHA-256 hashes made by the application, so no email or client
-- address is stored. A row with tat <= now is idle (the same as no row) and may be swept.

CREATE TABLE {t}rate_limits (
    key BLOB    NOT NULL PRIMARY KEY CHECK (length(key) = 32),
    tat INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX {t}rate_limits_tat_idx ON {t}rate_limits (tat);
