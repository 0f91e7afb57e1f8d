-- HoneyBee store on PostgreSQL, schema version 1 (the SQLite store's version 3, same
-- tables and columns). Ids, serials, sessions and hashes are lowercase hex text as in
-- SQLite, so `honeybee store migrate` copies values unchanged. Text that is sorted or
-- range-compared uses the "C" collation: byte order, as SQLite's, whatever the
-- database's locale, so pages, top-N ties and source-prefix ranges come out the same on
-- both backends.

CREATE TABLE events (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node        TEXT    COLLATE "C" NOT NULL,
    seq         BIGINT  NOT NULL,
    time_ms     BIGINT  NOT NULL,
    received_ms BIGINT  NOT NULL,
    service     TEXT    COLLATE "C" NOT NULL,
    kind        TEXT    COLLATE "C" NOT NULL,
    src_ip      TEXT    COLLATE "C",
    src_port    INTEGER,
    session     TEXT    COLLATE "C",
    username    TEXT    COLLATE "C",
    password    TEXT    COLLATE "C",
    command     TEXT    COLLATE "C",
    search_text TEXT    NOT NULL DEFAULT '',
    body        BYTEA   NOT NULL,
    UNIQUE (node, seq)
);
CREATE INDEX events_time ON events (time_ms);
CREATE INDEX events_node_time ON events (node, time_ms);
CREATE INDEX events_service_time ON events (service, time_ms);
CREATE INDEX events_kind_time ON events (kind, time_ms);
CREATE INDEX events_src_ip ON events (src_ip);

CREATE TABLE nodes (
    id                TEXT    COLLATE "C" PRIMARY KEY,
    name              TEXT    NOT NULL,
    role              TEXT    NOT NULL,
    labels            TEXT    NOT NULL,
    serial            TEXT    NOT NULL,
    cert_not_after_ms BIGINT  NOT NULL,
    first_seen_ms     BIGINT  NOT NULL,
    last_seen_ms      BIGINT  NOT NULL,
    addr              TEXT,
    online            BOOLEAN NOT NULL,
    revoked           BOOLEAN NOT NULL,
    health            BYTEA,
    config            BYTEA   NOT NULL,
    via_relay         TEXT
);

CREATE TABLE certs (
    serial        TEXT    COLLATE "C" PRIMARY KEY,
    node          TEXT    COLLATE "C" NOT NULL,
    role          TEXT    NOT NULL,
    issued_ms     BIGINT  NOT NULL,
    not_after_ms  BIGINT  NOT NULL,
    superseded_by TEXT,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX certs_node ON certs (node);

CREATE TABLE revoked_nodes (
    node       TEXT   COLLATE "C" PRIMARY KEY,
    revoked_ms BIGINT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT    COLLATE "C" PRIMARY KEY,
    secret_hash BYTEA   NOT NULL,
    role        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    labels      TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    expires_ms  BIGINT  NOT NULL,
    uses_total  BIGINT  NOT NULL,
    uses_left   BIGINT  NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    outcome TEXT   NOT NULL,
    source  TEXT,
    detail  TEXT   NOT NULL
);
CREATE INDEX audit_time ON audit (time_ms);

CREATE TABLE captures (
    sha256  TEXT   COLLATE "C" PRIMARY KEY,
    id      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    size    BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    node    TEXT   NOT NULL,
    service TEXT   NOT NULL,
    session TEXT,
    time_ms BIGINT NOT NULL,
    meta    TEXT   NOT NULL
);
CREATE INDEX captures_time ON captures (time_ms);

CREATE TABLE capture_sightings (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256  TEXT   COLLATE "C" NOT NULL,
    node    TEXT   NOT NULL,
    service TEXT   NOT NULL,
    session TEXT,
    time_ms BIGINT NOT NULL,
    meta    TEXT   NOT NULL
);
CREATE INDEX capture_sightings_sha256 ON capture_sightings (sha256, time_ms);

CREATE TABLE module_credentials (
    id          TEXT    COLLATE "C" PRIMARY KEY,
    name        TEXT    COLLATE "C" NOT NULL,
    secret_hash TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX module_credentials_name ON module_credentials (name);

CREATE TABLE alerts (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms  BIGINT NOT NULL,
    module   TEXT   NOT NULL,
    severity TEXT   NOT NULL,
    title    TEXT   NOT NULL,
    body     TEXT   NOT NULL,
    node     TEXT,
    seq      BIGINT,
    acked_ms BIGINT,
    acked_by TEXT
);
CREATE INDEX alerts_time ON alerts (time_ms);

CREATE TABLE enrichments (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node        TEXT   COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    module      TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    data        TEXT   NOT NULL,
    time_ms     BIGINT NOT NULL,
    geo_country TEXT   COLLATE "C",
    geo_lat     DOUBLE PRECISION,
    geo_lon     DOUBLE PRECISION
);
CREATE INDEX enrichments_event ON enrichments (node, seq);
