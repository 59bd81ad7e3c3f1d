-- Empty (after trimming) and over-long prompts and completions.
WITH
kept AS (
    SELECT * EXCLUDE (verdict) FROM resolved WHERE verdict = 'keep'
)
SELECT
    *,
    CASE
        WHEN coalesce(ptrim, 0) < $min_prompt OR coalesce(ctrim, 0) < $min_completion THEN 'empty'
        WHEN plen > $max_prompt OR clen > $max_completion THEN 'too_long'
        ELSE 'ok'
    END AS reason
FROM kept
