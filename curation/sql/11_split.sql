-- Held-out eval slice by a seeded hash of the session (else trace) id, or of the prompt
-- (split_by, 05_traces.sql); a prompt that has any row on the train side stays wholly in train,
-- so no prompt is on both sides (by prompt, all of a prompt's rows already agree).
WITH
kept AS (
    SELECT * EXCLUDE (reason) FROM capped WHERE reason = 'ok'
),
hashed AS (
    SELECT
        *,
        split_key % 1000000 < $eval_ppm
            AS hashed_eval
    FROM kept
),
eval_prompts AS (
    SELECT ph FROM hashed GROUP BY ph HAVING bool_and(hashed_eval)
)
SELECT h.*, CASE WHEN e.ph IS NULL THEN 'train' ELSE 'eval' END AS split
FROM hashed AS h
LEFT JOIN eval_prompts AS e ON h.ph = e.ph
