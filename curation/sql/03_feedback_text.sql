-- The text feedback carries itself, hashed and length-checked, for the few rows that carry any:
-- an edit's corrected completion, and the prompt and completion of self-contained feedback.
-- A missing text counts as empty; the limits are the filters' (07_filtered.sql). `own_*` is the
-- feedback's own text, which 06_joined.sql takes where the action has no trace.
WITH
feedback_files AS NOT MATERIALIZED (SELECT * FROM feedback_src)
SELECT
    _pos AS feedback_pos,
    hash(edited_completion) AS edited_hash,
    coalesce(shorter_than(edited_completion, $min_completion), true) AS edited_empty,
    coalesce(longer_than(edited_completion, $max_completion), false) AS edited_too_long,
    hash(prompt) AS own_prompt_hash, hash(completion) AS own_completion_hash,
    coalesce(shorter_than(prompt, $min_prompt), true) AS own_prompt_empty,
    coalesce(longer_than(prompt, $max_prompt), false) AS own_prompt_too_long,
    coalesce(shorter_than(completion, $min_completion), true) AS own_completion_empty,
    coalesce(longer_than(completion, $max_completion), false) AS own_completion_too_long,
    -- the held-out split of feedback with no trace goes by its trace_id, or its prompt (09_split_rows.sql)
    CASE WHEN $split_by = 'prompt' THEN hash($seed, hash(prompt)) ELSE hash($seed, trace_id) END AS own_split_key
FROM feedback_files
WHERE event_time <= $as_of AND _ingested_at <= $as_of
    AND (edited_completion IS NOT NULL OR prompt IS NOT NULL OR completion IS NOT NULL)
