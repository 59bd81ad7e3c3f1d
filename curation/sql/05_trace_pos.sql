-- The traces recent feedback points at, found by their ids alone: a scan of the window's traces
-- that reads `trace_id`, `event_time` and `_ingested_at` and never their text, matched to the
-- feedback on two 64-bit hashes of the id (every copy known at --as-of; 05_traces.sql keeps the
-- first). Only these positions have their text read (05_trace_rows.sql), so the text read
-- follows the feedback, not the traces.
WITH
actions AS NOT MATERIALIZED (SELECT * FROM feedback),
trace_files AS NOT MATERIALIZED (SELECT * FROM traces_src),
wanted AS (
    SELECT trace_hash, trace_hash_salted FROM actions WHERE recent
)
SELECT t._pos
FROM trace_files AS t
SEMI JOIN wanted AS w ON hash(t.trace_id) = w.trace_hash AND hash('trace', t.trace_id) = w.trace_hash_salted
WHERE t.event_time <= $as_of AND t._ingested_at <= $as_of
