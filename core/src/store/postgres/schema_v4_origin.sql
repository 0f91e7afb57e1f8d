-- Schema version 4: which core stored each event, for the module bus across cores
-- (`core/src/cluster/tail.rs`): every core reads back by id the events the other cores
-- stored and offers them to its own modules; `origin` is how it skips its own (which its
-- ingest has published already), exactly, whichever core holds the node's lease by then.
--
-- The value is the storing core's id (`core.id`, 128 bits, as a uuid: 16 bytes a row),
-- set by its event writer inside each group transaction (`set_config('honeybee.core', …,
-- true)`), so the COPY and INSERT statements do not change. Rows stored before this
-- version, or by a process that is no core (`honeybee store migrate`), have none.
-- The column is added without a default first, so the existing rows are not rewritten.

ALTER TABLE events ADD COLUMN IF NOT EXISTS origin UUID;
ALTER TABLE events ALTER COLUMN origin
    SET DEFAULT CAST(NULLIF(current_setting('honeybee.core', true), '') AS uuid);
