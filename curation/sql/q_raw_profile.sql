-- Exact raw-feedback measures for the data-quality checks (rows that had arrived by --as-of).
WITH
arrived AS (
    SELECT * FROM feedback_src WHERE _ingested_at <= $as_of
)
SELECT
    count(*) AS raw_rows,
    count(*) FILTER (WHERE event_id IS NULL OR trace_id IS NULL OR event_time IS NULL) AS raw_required_nulls,
    count(*) FILTER (
        WHERE coalesce(kind, 'thumb') NOT IN ('thumb', 'edit')
           OR (coalesce(kind, 'thumb') = 'thumb' AND (label IS NULL OR label NOT IN ('up', 'down')))
           OR (kind = 'edit' AND edited_completion IS NULL)
    ) AS raw_bad_labels,
    count(*) FILTER (
        WHERE event_time > _ingested_at + to_microseconds(CAST($skew_minutes * 60000000 AS BIGINT))
    ) AS raw_future_events,
    min(event_time) AS raw_first_event,
    max(event_time) AS raw_last_event
FROM arrived
