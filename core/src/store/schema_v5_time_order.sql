-- Schema version 5: the time index carries the whole search order. Event search pages are
-- `ORDER BY time_ms DESC, node DESC, seq DESC LIMIT n` (`analytics::search_sql`); with an
-- index on `time_ms` alone SQLite's planner read the whole table and sorted it for the
-- unfiltered page and for a free-text page (seconds at 10 million events), where a
-- backwards walk of an index in that order stops after n matching rows. This index is
-- that order (and the keyset cursor `(time_ms, node, seq) < (…)` is a range of it); it
-- still serves every time-range count and aggregate that used `events_time` (its first
-- column), so `events_time` goes.

CREATE INDEX events_time_order ON events (time_ms, node, seq);
DROP INDEX events_time;
