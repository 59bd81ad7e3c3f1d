-- Exact measures of the curated rows for the data-quality checks. The text is not read: the
-- snapshot's prompt_chars and completion_chars are its lengths (NULL for a NULL text).
SELECT
    count(*) FILTER (
        WHERE prompt_chars IS NULL OR completion_chars IS NULL OR label IS NULL OR trace_id IS NULL OR event_time IS NULL
    ) AS curated_required_nulls,
    count(*) FILTER (WHERE split = 'train') AS train_rows,
    coalesce(avg(label::INTEGER) FILTER (WHERE split = 'train'), 0) AS train_desirable_share,
    count(DISTINCT label) FILTER (WHERE split = 'train') AS train_classes,
    count(*) FILTER (
        WHERE prompt_chars NOT BETWEEN $min_prompt AND $max_prompt
           OR completion_chars NOT BETWEEN $min_completion AND $max_completion
    ) AS curated_bad_lengths
FROM out
