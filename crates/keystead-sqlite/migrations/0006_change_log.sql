-- The change log (keystead::ChangeLogStore): every change that the caches of other instances
-- must see, recorded before it is announced on the change feed. Instances poll the version row
-- and apply the entries they have not seen, so a change the feed lost still reaches them.
--
-- The version row is updated in the transaction that appends an entry (under SQLite's write
-- lock): versions follow commit order without gaps.
CREATE TABLE {t}change_version (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL CHECK (version >= 0)
) STRICT;

INSERT INTO {t}change_version (id, version) VALUES (1, 0);

CREATE TABLE {t}change_log (
    version INTEGER NOT NULL PRIMARY KEY CHECK (version > 0),
    payload TEXT    NOT NULL CHECK (length(payload) > 0),
    at      INTEGER NOT NULL
) STRICT;

CREATE INDEX {t}change_log_at_idx ON {t}change_log (at);
