-- Feedback rows in the window folders: read, or left out because they happened or arrived after --as-of.
WITH
stamped AS (
    SELECT event_time <= $as_of AND _ingested_at <= $as_of AS known_then
    FROM feedback_src
)
SELECT
    count(*) FILTER (WHERE known_then) AS read,
    count(*) FILTER (WHERE NOT known_then OR known_then IS NULL) AS after_as_of
FROM stamped
