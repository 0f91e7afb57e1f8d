-- Schema version 5: each core's load beside its heartbeat, so `honeybee status` and
-- `honeybee cores` on any core show every core's (`core/src/cluster/`). Written with the
-- heartbeat (every third of the lease time): figures at most that old, never a live feed.
-- IF NOT EXISTS: applying it twice (a test that winds the version back) is harmless.

ALTER TABLE cores ADD COLUMN IF NOT EXISTS connections BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cores ADD COLUMN IF NOT EXISTS handshakes_per_s DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE cores ADD COLUMN IF NOT EXISTS ingest_per_s DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE cores ADD COLUMN IF NOT EXISTS modules BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cores ADD COLUMN IF NOT EXISTS module_queued BIGINT NOT NULL DEFAULT 0;
