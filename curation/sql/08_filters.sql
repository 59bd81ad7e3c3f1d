-- Empty (after trimming) and over-long prompts and completions; a row a conflict dropped keeps
-- its verdict as its reason, so one table counts both steps.
SELECT
    * EXCLUDE (verdict),
    CASE
        WHEN verdict <> 'keep' THEN verdict
        WHEN coalesce(ptrim, 0) < $min_prompt OR coalesce(ctrim, 0) < $min_completion THEN 'empty'
        WHEN plen > $max_prompt OR clen > $max_completion THEN 'too_long'
        ELSE 'ok'
    END AS reason
FROM resolved
