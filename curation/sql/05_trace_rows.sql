-- The matched traces' rows (05_trace_pos.sql) with every column the curation takes from a trace:
-- the one read of their text. Held as a table while they are few (pipeline.HOLD_TRACE_ROWS), when
-- `traces_src` becomes a view of it and 13_fetch.sql reads the snapshot's text from here, not
-- from the lake again; otherwise a view that reads the lake.
SELECT
    t.trace_id, t.event_time, t._ingested_at, t._topic, t._partition, t._offset, t.model_version,
    t.prompt, t.prompt_format, t.completion, t.session_id, t.user_id, t.tags, t._pos
FROM traces_src AS t
SEMI JOIN tr_pos AS p ON t._pos = p._pos
