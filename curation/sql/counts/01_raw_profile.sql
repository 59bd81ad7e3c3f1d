-- The funnel's first counters: rows of users who asked to be forgotten (curation.forget, left out
-- of every step; counted by pipeline._source), the feedback read (known at --as-of) and left out
-- because it happened or arrived later, and the rows of date folders older than the window
-- (pipeline._source counts them from the files' metadata, without reading them).
SELECT
    $forgotten_feedback AS forgotten_feedback,
    $forgotten_traces AS forgotten_traces,
    coalesce(sum(events) FILTER (WHERE known_then), 0) AS read,
    coalesce(sum(events) FILTER (WHERE NOT known_then), 0) AS after_as_of,
    $feedback_older_rows AS aged_out_by_date_folders
FROM raw_profile
