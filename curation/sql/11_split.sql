-- Held-out eval slice by a seeded hash of the session (else trace) id, or of the prompt
-- (split_by, 05_traces.sql), or of the session's component (split_by = component: sessions that
-- share a prompt, transitively, are one group, `split_groups` from pipeline._split_groups); a
-- prompt that has any row on the train side stays wholly in train, so no prompt is on both sides
-- (by prompt or component, all of a prompt's rows already agree).
WITH
kept AS (
    SELECT * EXCLUDE (reason) FROM capped WHERE reason = 'ok'
),
hashed AS (
    SELECT
        k.*,
        CASE WHEN $split_by = 'component' THEN hash($seed, g.component) ELSE k.split_key END % 1000000 < $eval_ppm
            AS hashed_eval
    FROM kept AS k
    LEFT JOIN split_groups AS g ON k.split_key = g.split_key
),
eval_prompts AS (
    SELECT ph FROM hashed GROUP BY ph HAVING bool_and(hashed_eval)
)
SELECT h.*, CASE WHEN e.ph IS NULL THEN 'train' ELSE 'eval' END AS split
FROM hashed AS h
LEFT JOIN eval_prompts AS e ON h.ph = e.ph
