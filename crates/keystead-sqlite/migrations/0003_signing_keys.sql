-- API token signing keys (keystead::tokens::KeyStore): one row per key, the key as the JSON
-- of keystead::tokens::StoredKey.
CREATE TABLE {t}signing_keys (
    kid  TEXT PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 64),
    data TEXT NOT NULL
) STRICT;
