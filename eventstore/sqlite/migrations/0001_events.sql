-- The log. Positions are the rowid, handed out by the single writer.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB,
    recorded_at    INTEGER NOT NULL
);
-- The stream index, written behind the log (see streamindex.go): events
-- after indexed_through are indexed in memory and rebuilt from the log on
-- open.
CREATE TABLE stream_index (
    stream_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
CREATE TABLE stream_index_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_through INTEGER NOT NULL
);
INSERT INTO stream_index_state (id, indexed_through) VALUES (1, 0);
CREATE TABLE snapshots (
    stream_id     TEXT PRIMARY KEY,
    version       INTEGER NOT NULL,
    state_version INTEGER NOT NULL,
    state         BLOB    NOT NULL
) WITHOUT ROWID;
