-- Schema version 2: an index for one session's events (the dashboard's Session view).
-- Its columns follow the search as written (`analytics::search_sql`): `session = $1`,
-- then `ORDER BY time_ms DESC, node DESC, seq DESC` (node has the "C" collation, as in
-- the index), so the page is a backwards index scan with no sort.

CREATE INDEX events_session_time ON events (session, time_ms, node, seq);
