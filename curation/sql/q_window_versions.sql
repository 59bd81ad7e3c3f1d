-- Feedback actions of the window (recent and known at --as-of) per model_version that served them:
-- the trace's, else the action's own (self-contained feedback). Before any age-out by version, so
-- curation.quality.unknown_versions_check can name the versions the registry does not know and
-- how many rows they held. Actions with no version (their trace missing) are left out.
-- Run while 02's and 05's tables are there (pipeline.run_pipeline, after 06_joined): the actions
-- and their traces are already matched on the ids' hashes, so only the low-cardinality
-- model_version columns are read from the lake, by position, and no trace_id is read again.
WITH
actions AS NOT MATERIALIZED (SELECT * FROM feedback),
matched_traces AS NOT MATERIALIZED (SELECT * FROM traces),
trace_files AS NOT MATERIALIZED (SELECT * FROM traces_src),
feedback_files AS NOT MATERIALIZED (SELECT * FROM feedback_src),
recent AS (
    SELECT trace_hash, trace_hash_salted, feedback_pos FROM actions WHERE recent
),
served AS (
    SELECT m.trace_hash, m.trace_hash_salted, t.model_version
    FROM matched_traces AS m
    JOIN trace_files AS t ON t._pos = m.trace_pos
),
own AS (
    SELECT f._pos AS feedback_pos, f.model_version
    FROM feedback_files AS f
    SEMI JOIN recent AS r ON f._pos = r.feedback_pos
)
SELECT coalesce(s.model_version, o.model_version) AS model_version, count(*) AS rows
FROM recent AS r
LEFT JOIN served AS s ON r.trace_hash = s.trace_hash AND r.trace_hash_salted = s.trace_hash_salted
LEFT JOIN own AS o ON r.feedback_pos = o.feedback_pos
WHERE coalesce(s.model_version, o.model_version) IS NOT NULL
GROUP BY ALL
ORDER BY rows DESC, model_version
