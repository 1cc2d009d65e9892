-- API token signing keys (keystead::tokens::KeyStore): one row per key, the key as the JSON
-- of keystead::tokens::StoredKey (it holds the private seed: restrict access to this table as
-- to the rest of the auth schema).
CREATE TABLE {t}signing_keys (
    kid  text PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 64),
    data text NOT NULL
);
