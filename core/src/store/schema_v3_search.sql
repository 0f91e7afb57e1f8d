-- Schema version 3: searchable columns derived at insert. Free-text search, the top
-- credentials and top commands, and the geo map read plain columns, so every backend
-- answers them in its own SQL (version 2 decoded event bodies in SQL functions that only
-- this process could register). Rows stored before this version are filled in by the
-- migration in Rust (`backfill_v3`).

ALTER TABLE events ADD COLUMN password TEXT;
ALTER TABLE events ADD COLUMN command TEXT;
ALTER TABLE events ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX events_kind_time ON events (kind, time_ms);

ALTER TABLE enrichments ADD COLUMN geo_country TEXT;
ALTER TABLE enrichments ADD COLUMN geo_lat REAL;
ALTER TABLE enrichments ADD COLUMN geo_lon REAL;
