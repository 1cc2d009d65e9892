-- Sign-in flows with a provider in progress (keystead::OAuthFlow): keyed on the hash of the
-- reference in the browser's flow cookie, taken out (deleted) once by the callback.
CREATE TABLE {t}oauth_flows (
    id_hash       bytea       PRIMARY KEY CHECK (length(id_hash) = 32),
    provider      text        NOT NULL CHECK (provider <> ''),
    state_hash    bytea       NOT NULL CHECK (length(state_hash) = 32),
    nonce         text        NOT NULL CHECK (nonce <> ''),
    pkce_verifier text        NOT NULL CHECK (length(pkce_verifier) BETWEEN 43 AND 128),
    next          text,
    link_user_id  uuid        REFERENCES {t}users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);

CREATE INDEX oauth_flows_expires_at_idx ON {t}oauth_flows (expires_at);
