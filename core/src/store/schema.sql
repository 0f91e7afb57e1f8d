-- HoneyBee store, schema version 1.
-- Ids, serials, sessions and hashes are lowercase hex text so the file reads well in the
-- sqlite3 shell; typed values the core never filters on are postcard blobs; labels and
-- capture metadata are JSON arrays of [key, value] pairs.

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    node        TEXT    NOT NULL,
    -- The agent's sequence number (at most 2^63 - 1).
    seq         INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    service     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    src_ip      TEXT,
    src_port    INTEGER,
    session     TEXT,
    username    TEXT,
    -- postcard of honeybee_proto::event::Event
    body        BLOB    NOT NULL,
    UNIQUE (node, seq)
);
CREATE INDEX events_time ON events (time_ms);
CREATE INDEX events_node_time ON events (node, time_ms);
CREATE INDEX events_service_time ON events (service, time_ms);
CREATE INDEX events_src_ip ON events (src_ip);

CREATE TABLE nodes (
    id                TEXT    PRIMARY KEY,
    name              TEXT    NOT NULL,
    role              TEXT    NOT NULL,
    labels            TEXT    NOT NULL,
    serial            TEXT    NOT NULL,
    cert_not_after_ms INTEGER NOT NULL,
    first_seen_ms     INTEGER NOT NULL,
    last_seen_ms      INTEGER NOT NULL,
    addr              TEXT,
    online            INTEGER NOT NULL,
    revoked           INTEGER NOT NULL,
    -- postcard of honeybee_proto::control::Health
    health            BLOB,
    -- postcard of honeybee_proto::config::NodeConfig
    config            BLOB    NOT NULL,
    via_relay         TEXT
) WITHOUT ROWID;

CREATE TABLE certs (
    serial        TEXT    PRIMARY KEY,
    node          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    issued_ms     INTEGER NOT NULL,
    not_after_ms  INTEGER NOT NULL,
    superseded_by TEXT,
    revoked       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX certs_node ON certs (node);

-- The persisted denylist by node id. Only ever added to.
CREATE TABLE revoked_nodes (
    node       TEXT    PRIMARY KEY,
    revoked_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tokens (
    id          TEXT    PRIMARY KEY,
    secret_hash BLOB    NOT NULL,
    role        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    labels      TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    uses_total  INTEGER NOT NULL,
    uses_left   INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    source  TEXT,
    detail  TEXT    NOT NULL
);

-- One row per distinct content; node .. meta are those of the first sighting.
CREATE TABLE captures (
    sha256  TEXT    PRIMARY KEY,
    size    INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    node    TEXT    NOT NULL,
    service TEXT    NOT NULL,
    session TEXT,
    time_ms INTEGER NOT NULL,
    meta    TEXT    NOT NULL
);
CREATE INDEX captures_time ON captures (time_ms);

-- Every upload of every capture, duplicates included.
CREATE TABLE capture_sightings (
    id      INTEGER PRIMARY KEY,
    sha256  TEXT    NOT NULL,
    node    TEXT    NOT NULL,
    service TEXT    NOT NULL,
    session TEXT,
    time_ms INTEGER NOT NULL,
    meta    TEXT    NOT NULL
);
CREATE INDEX capture_sightings_sha256 ON capture_sightings (sha256, time_ms);
