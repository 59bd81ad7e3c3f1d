-- Held-out eval slice by a seeded hash of the session (else trace) id, or of the prompt
-- (split_by, 05_traces.sql), or of the session's component (split_by = component: sessions that
-- share a prompt, transitively, are one group, `split_groups` from pipeline._split_groups; empty
-- for the other modes); a prompt that has any row on the train side stays wholly in train, so no
-- prompt is on both sides (by prompt or component, all of a prompt's rows already agree).
-- Counted by counts/09_split_rows.sql.
WITH
capped_rows AS NOT MATERIALIZED (SELECT * FROM capped),
components AS NOT MATERIALIZED (SELECT * FROM split_groups),
kept AS (
    SELECT * EXCLUDE (reason) FROM capped_rows WHERE reason = 'ok'
),
hashed AS (
    SELECT
        k.*,
        CASE WHEN $split_by = 'component' THEN hash($seed, g.component) ELSE k.split_key END % 1000000 < $eval_ppm
            AS hashed_eval
    FROM kept AS k
    LEFT JOIN components AS g ON k.split_key = g.split_key
),
eval_prompts AS (
    SELECT prompt_hash FROM hashed GROUP BY prompt_hash HAVING bool_and(hashed_eval)
)
SELECT h.*, CASE WHEN e.prompt_hash IS NULL THEN 'train' ELSE 'eval' END AS split
FROM hashed AS h
LEFT JOIN eval_prompts AS e ON h.prompt_hash = e.prompt_hash
