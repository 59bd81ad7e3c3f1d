-- The text feedback carries itself, hashed and length-checked, for the few rows that carry any:
-- an edit's corrected completion, and the prompt and completion of self-contained feedback.
-- A missing text counts as empty; the limits are the filters' (09_filters.sql).
SELECT
    _pos AS fb_pos,
    hash(edited_completion) AS eh,
    coalesce(shorter_than(edited_completion, $min_completion), true) AS e_empty,
    coalesce(longer_than(edited_completion, $max_completion), false) AS e_long,
    hash(prompt) AS sc_ph, hash(completion) AS sc_ch,
    coalesce(shorter_than(prompt, $min_prompt), true) AS sc_p_empty,
    coalesce(longer_than(prompt, $max_prompt), false) AS sc_p_long,
    coalesce(shorter_than(completion, $min_completion), true) AS sc_c_empty,
    coalesce(longer_than(completion, $max_completion), false) AS sc_c_long,
    -- the held-out split of feedback with no trace goes by its trace_id, or its prompt (11_split.sql)
    CASE WHEN $split_by = 'prompt' THEN hash($seed, hash(prompt)) ELSE hash($seed, trace_id) END AS sc_split_key
FROM feedback_src
WHERE event_time <= $as_of AND _ingested_at <= $as_of
    AND (edited_completion IS NOT NULL OR prompt IS NOT NULL OR completion IS NOT NULL)
