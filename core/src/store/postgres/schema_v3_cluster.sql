-- Schema version 3: several cores on one database (`core/src/cluster/`).
--
-- `cores`: one row per core process identity (`<data-dir>/core.id`), its heartbeat and
-- what it serves; `honeybee cores` will list them.
-- `node_leases`: which core holds each node's one live connection. Taken when a core
-- welcomes the node (a newer connection anywhere takes it over, with a fresh generation),
-- renewed in one statement per core every third of its time to live, deleted when the
-- connection ends. Times are the database's own clock (`now()`), so cores never compare
-- their clocks with each other.
-- `cluster_commands`: a node command sent through one core to a node connected to another;
-- the notification carries only the row id (NOTIFY payloads are small and bounded).
-- IF NOT EXISTS: applying it twice (a test that winds the version back) is harmless.

CREATE TABLE IF NOT EXISTS cores (
    id           TEXT        COLLATE "C" PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    listen       TEXT        NOT NULL,
    advertise    TEXT        NOT NULL,
    version      TEXT        NOT NULL,
    nodes        BIGINT      NOT NULL DEFAULT 0,
    -- Unique among live cores: the low digits of the sequence numbers of the events this
    -- core records itself (pseudo-node `core`, `correlator::SeqClock`).
    slot         INTEGER     NOT NULL DEFAULT 0
);

CREATE SEQUENCE IF NOT EXISTS node_lease_generation;

CREATE TABLE IF NOT EXISTS node_leases (
    node       TEXT        COLLATE "C" PRIMARY KEY,
    core_id    TEXT        COLLATE "C" NOT NULL,
    generation BIGINT      NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS node_leases_core ON node_leases (core_id);
CREATE INDEX IF NOT EXISTS node_leases_expires ON node_leases (expires_at);

CREATE TABLE IF NOT EXISTS cluster_commands (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node       TEXT        COLLATE "C" NOT NULL,
    origin     TEXT        COLLATE "C" NOT NULL,
    target     TEXT        COLLATE "C" NOT NULL,
    command    BYTEA       NOT NULL,
    result     BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cluster_commands_created ON cluster_commands (created_at);
