-- The change log (keystead::ChangeLogStore): every change that the caches of other instances
-- must see, recorded before it is announced on the change feed. Instances poll the version row
-- and apply the entries they have not seen, so a change the feed lost still reaches them.
--
-- The version row is updated in the transaction that appends an entry: its row lock makes
-- versions follow commit order without gaps (a sequence would not).
CREATE TABLE {t}change_version (
    id      smallint PRIMARY KEY CHECK (id = 1),
    version bigint   NOT NULL CHECK (version >= 0)
);

INSERT INTO {t}change_version (id, version) VALUES (1, 0);

CREATE TABLE {t}change_log (
    version bigint      PRIMARY KEY CHECK (version > 0),
    payload text        NOT NULL CHECK (payload <> ''),
    at      timestamptz NOT NULL
);

CREATE INDEX change_log_at_idx ON {t}change_log (at);
