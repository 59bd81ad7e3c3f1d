-- One pass over the window's feedback files for all the run reports about raw feedback, grouped
-- so that each figure is a sum over the groups: the rows read and those left out because they
-- happened or arrived after --as-of (the funnel), the raw data-quality measures (over the rows
-- that had arrived by --as-of) and the events per UTC day and label (the summary's first plot,
-- over the rows read; edits apart). Counted by counts/01_raw_profile.sql.
WITH
feedback_files AS NOT MATERIALIZED (SELECT * FROM feedback_src)
SELECT
    CAST(event_time AS DATE) AS day,
    CASE WHEN kind = 'edit' THEN 'edit' ELSE coalesce(label, 'missing') END AS day_label,
    coalesce(event_time <= $as_of AND _ingested_at <= $as_of, false) AS known_then,
    coalesce(_ingested_at <= $as_of, false) AS arrived,
    count(*) AS events,
    count(*) FILTER (WHERE event_id IS NULL OR trace_id IS NULL OR event_time IS NULL) AS required_nulls,
    count(*) FILTER (
        WHERE coalesce(kind, 'thumb') NOT IN ('thumb', 'edit', 'rating')
           OR (coalesce(kind, 'thumb') = 'thumb' AND (label IS NULL OR label NOT IN ('up', 'down')))
           OR (kind = 'edit' AND edited_completion IS NULL)
           OR (kind = 'rating' AND score IS NULL AND label IS NULL)
    ) AS bad_labels,
    count(*) FILTER (
        WHERE event_time > _ingested_at + to_microseconds(CAST($skew_minutes * 60000000 AS BIGINT))
    ) AS future_events
FROM feedback_files
GROUP BY ALL
