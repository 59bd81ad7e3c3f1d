-- Empty (after trimming) and over-long prompts and completions (checked when the text was read,
-- in 03 and 05; a missing text is empty); a row a conflict dropped keeps its verdict as its
-- reason, so one table counts both steps.
SELECT
    * EXCLUDE (verdict, p_empty, p_long, c_empty, c_long),
    CASE
        WHEN verdict <> 'keep' THEN verdict
        WHEN coalesce(p_empty, true) OR coalesce(c_empty, true) THEN 'empty'
        WHEN coalesce(p_long, false) OR coalesce(c_long, false) THEN 'too_long'
        ELSE 'ok'
    END AS reason
FROM resolved
