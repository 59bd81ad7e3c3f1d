-- The matched traces' rows (05_trace_pos.sql) with every column the curation takes from a trace:
-- the one read of their text. Held as a table while they are few (pipeline.HOLD_TRACE_ROWS), when
-- `traces_src` becomes a view of it and 13_fetch.sql reads the snapshot's text from here, not
-- from the lake again; otherwise a view that reads the lake.
WITH
trace_files AS NOT MATERIALIZED (SELECT * FROM traces_src),
matched AS NOT MATERIALIZED (SELECT * FROM trace_pos)
SELECT
    t.trace_id, t.event_time, t._ingested_at, t._topic, t._partition, t._offset, t.model_version,
    t.prompt, t.prompt_format, t.completion, t.session_id, t.user_id, t.tags, t._pos
FROM trace_files AS t
SEMI JOIN matched AS m ON t._pos = m._pos
