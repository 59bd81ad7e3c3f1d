-- One split in the snapshot's column order (docs/contracts.md), in a stable row order:
-- event_time, trace_id, source, event_id. `out` is stored in that order (pipeline._fetch) and
-- the export runs with preserve_insertion_order, so no ORDER BY here (it would sort the text again).
SELECT
    prompt, prompt_format, completion, label, trace_id, model_version, event_time, source,
    session_id, user_id, tags, event_id
FROM out
WHERE split = $split
