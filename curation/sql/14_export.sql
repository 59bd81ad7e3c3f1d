-- One split in the snapshot's column order (docs/contracts.md), in a stable row order.
SELECT
    prompt, prompt_format, completion, label, trace_id, model_version, event_time, source,
    session_id, user_id, tags, event_id
FROM out
WHERE split = $split
ORDER BY event_time, trace_id, source, event_id
