-- Schema version 4: an index for one session's events (the dashboard's Session view).
-- Its columns follow the search as written (`analytics::search_sql`): `session = ?`, then
-- `ORDER BY time_ms DESC, node DESC, seq DESC`, so the page is a backwards walk of the
-- index with no sort, and the keyset cursor `(time_ms, node, seq) < (…)` narrows the same
-- walk.

CREATE INDEX events_session_time ON events (session, time_ms, node, seq);
