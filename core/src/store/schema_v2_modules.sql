-- Schema version 2: modules. Credentials (hash of the secret only), the alerts modules
-- publish, and the enrichments and annotations they attach to events.

CREATE TABLE module_credentials (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX module_credentials_name ON module_credentials (name);

CREATE TABLE alerts (
    id        INTEGER PRIMARY KEY,
    time_ms   INTEGER NOT NULL,
    module    TEXT    NOT NULL,
    severity  TEXT    NOT NULL,
    title     TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    node      TEXT,
    seq       INTEGER,
    acked_ms  INTEGER,
    acked_by  TEXT
);
CREATE INDEX alerts_time ON alerts (time_ms);

CREATE TABLE enrichments (
    id      INTEGER PRIMARY KEY,
    node    TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    module  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    data    TEXT    NOT NULL,
    time_ms INTEGER NOT NULL
);
CREATE INDEX enrichments_event ON enrichments (node, seq);
