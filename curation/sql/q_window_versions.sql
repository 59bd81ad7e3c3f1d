-- Feedback actions of the window (recent and known at --as-of) per model_version that served them:
-- the trace's, else the action's own (self-contained feedback). Before any age-out by version, so
-- curation.quality.unknown_versions_check can name the versions the registry does not know and
-- how many rows they held. Actions with no version (their trace missing) are left out.
WITH
actions AS (
    SELECT trace_id, model_version
    FROM feedback_src
    WHERE event_time >= $cutoff AND event_time <= $as_of AND _ingested_at <= $as_of
),
served AS (
    SELECT trace_id, any_value(model_version) AS model_version
    FROM traces_src
    WHERE event_time <= $as_of AND _ingested_at <= $as_of AND model_version IS NOT NULL
    GROUP BY trace_id
)
SELECT coalesce(s.model_version, a.model_version) AS model_version, count(*) AS rows
FROM actions AS a
LEFT JOIN served AS s ON a.trace_id = s.trace_id
WHERE coalesce(s.model_version, a.model_version) IS NOT NULL
GROUP BY ALL
ORDER BY rows DESC, model_version
