-- Schema version 6: per-minute event counts for the Overview and Analytics pages
-- (`rollup.rs`; the SQLite store's version 6, same tables): written in the same
-- transaction as the events they count (under the events lock), so a query reads whole
-- minutes from here instead of every event. `minute` is floor(time_ms / 60000).
-- Rows stored before this version are counted by a batched backfill after the migration
-- (`count_backfill`: ids [next_id, end_id) still to count, one row locked by whichever
-- core runs a batch; no row once done); until it is done queries count from `events`.

CREATE TABLE IF NOT EXISTS event_counts (
    minute  BIGINT NOT NULL,
    service TEXT   COLLATE "C" NOT NULL,
    kind    TEXT   COLLATE "C" NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (minute, service, kind)
);

CREATE TABLE IF NOT EXISTS node_counts (
    minute BIGINT NOT NULL,
    node   TEXT   COLLATE "C" NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (minute, node)
);

CREATE TABLE IF NOT EXISTS count_backfill (
    next_id BIGINT NOT NULL,
    end_id  BIGINT NOT NULL
);
-- Counted from scratch, so a migration run again (a store set back to an older version
-- by hand) cannot count an event twice.
DELETE FROM event_counts;
DELETE FROM node_counts;
DELETE FROM count_backfill;
INSERT INTO count_backfill (next_id, end_id)
    SELECT MIN(id), MAX(id) + 1 FROM events HAVING COUNT(*) > 0;
