CREATE TABLE events (
    position       BIGINT      PRIMARY KEY,
    stream_id      TEXT        NOT NULL,
    version        BIGINT      NOT NULL,
    event_id       UUID        NOT NULL UNIQUE,
    type           TEXT        NOT NULL,
    schema_version INT         NOT NULL,
    data           JSON        NOT NULL,
    metadata       JSON,
    recorded_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (stream_id, version)
);
-- One row: the last position handed out. Its row lock, held from
-- allocation to commit, orders commits by position (see package doc).
CREATE TABLE positions (
    id   INT    PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO positions (id, last) VALUES (1, 0);
CREATE TABLE snapshots (
    stream_id     TEXT   PRIMARY KEY,
    version       BIGINT NOT NULL,
    state_version INT    NOT NULL,
    state         JSON   NOT NULL
);
