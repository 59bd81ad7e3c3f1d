-- Exact measures of the curated rows for the data-quality checks.
SELECT
    count(*) FILTER (
        WHERE prompt IS NULL OR completion IS NULL OR label IS NULL OR trace_id IS NULL OR event_time IS NULL
    ) AS curated_required_nulls,
    count(*) FILTER (WHERE split = 'train') AS train_rows,
    coalesce(avg(label::INTEGER) FILTER (WHERE split = 'train'), 0) AS train_desirable_share,
    count(DISTINCT label) FILTER (WHERE split = 'train') AS train_classes,
    count(*) FILTER (
        WHERE length(prompt) NOT BETWEEN $min_prompt AND $max_prompt
           OR length(completion) NOT BETWEEN $min_completion AND $max_completion
    ) AS curated_bad_lengths
FROM out
