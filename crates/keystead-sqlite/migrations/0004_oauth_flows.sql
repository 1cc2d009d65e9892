-- Sign-in flows with a provider in progress (keystead::OAuthFlow): keyed on the hash of the
-- reference in the browser's flow cookie, taken out (deleted) once by the callback.
CREATE TABLE {t}oauth_flows (
    id_hash       BLOB    NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    provider      TEXT    NOT NULL CHECK (length(provider) > 0),
    state_hash    BLOB    NOT NULL CHECK (length(state_hash) = 32),
    nonce         TEXT    NOT NULL CHECK (length(nonce) > 0),
    pkce_verifier TEXT    NOT NULL CHECK (length(pkce_verifier) BETWEEN 43 AND 128),
    next          TEXT,
    link_user_id  TEXT    REFERENCES {t}users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX {t}oauth_flows_expires_idx ON {t}oauth_flows (expires_at);
