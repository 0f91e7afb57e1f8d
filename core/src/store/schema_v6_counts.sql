-- Schema version 6: per-minute event counts for the Overview and Analytics pages
-- (`rollup.rs`): written in the same transaction as the events they count, so a query
-- reads whole minutes from here instead of every event. `minute` is floor(time_ms / 60000).
-- Rows stored before this version are counted by a batched backfill after the migration
-- (`count_backfill`: ids [next_id, end_id) still to count; no row once done), so a big
-- store does not migrate in one giant transaction; until it is done queries count from
-- `events`.

CREATE TABLE IF NOT EXISTS event_counts (
    minute  INTEGER NOT NULL,
    service TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (minute, service, kind)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS node_counts (
    minute INTEGER NOT NULL,
    node   TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (minute, node)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS count_backfill (
    next_id INTEGER NOT NULL,
    end_id  INTEGER NOT NULL
);
-- Counted from scratch, so a migration run again (a store set back to an older version
-- by hand) cannot count an event twice.
DELETE FROM event_counts;
DELETE FROM node_counts;
DELETE FROM count_backfill;
INSERT INTO count_backfill (next_id, end_id)
    SELECT MIN(id), MAX(id) + 1 FROM events HAVING COUNT(*) > 0;
