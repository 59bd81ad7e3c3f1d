-- Completion lengths by label for the summary's histogram: a stable subset of at most $limit rows.
SELECT label, completion_chars
FROM out
ORDER BY hash(event_id, source), event_id, source
LIMIT $limit
