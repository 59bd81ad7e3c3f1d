-- Raw feedback per UTC day and label (edits apart), for the summary's first plot.
SELECT
    CAST(event_time AS DATE) AS day,
    CASE WHEN kind = 'edit' THEN 'edit' ELSE coalesce(label, 'missing') END AS label,
    count(*) AS events
FROM feedback_src
WHERE event_time <= $as_of AND _ingested_at <= $as_of
GROUP BY ALL
ORDER BY ALL
