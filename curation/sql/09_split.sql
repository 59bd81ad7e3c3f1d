-- Held-out eval slice by a seeded hash of the session (else trace) id; a prompt that has any
-- row on the train side stays wholly in train, so no prompt is on both sides.
WITH
kept AS (
    SELECT * EXCLUDE (reason) FROM capped WHERE reason = 'ok'
),
hashed AS (
    SELECT
        *,
        md5_number_lower($seed::VARCHAR || ':' || coalesce(session_id, trace_id)) % 1000000 < $eval_ppm
            AS hashed_eval
    FROM kept
)
SELECT
    *,
    CASE WHEN bool_and(hashed_eval) OVER (PARTITION BY ph) THEN 'eval' ELSE 'train' END AS split
FROM hashed
