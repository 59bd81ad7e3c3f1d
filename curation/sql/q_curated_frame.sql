-- The curated rows GX checks row by row (keys and lengths; a NULL length is a NULL text):
-- all of them up to $limit, else a stable subset.
SELECT
    split, label, trace_id, event_time, model_version, source,
    prompt_chars, completion_chars
FROM out
ORDER BY hash(event_id, source), event_id, source
LIMIT $limit
