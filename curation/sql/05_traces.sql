-- The traces recent feedback points at (05_trace_rows.sql), one row per trace_id (the first copy
-- to land wins), as hashes, length checks and flags: their text is hashed and measured here and
-- not kept. As in 04_latest.sql, only trace_ids seen more than once are ranked by their real keys.
WITH
known_then AS MATERIALIZED (
    SELECT
        hash(t.trace_id) AS t1, hash('trace', t.trace_id) AS t2,
        CASE WHEN $split_by = 'prompt' THEN hash($seed, hash(t.prompt))
            ELSE hash($seed, coalesce(t.session_id, t.trace_id)) END AS split_key,
        hash(t.prompt) AS ph, hash(t.completion) AS ch,
        coalesce(shorter_than(t.prompt, $min_prompt), true) AS p_empty,
        coalesce(longer_than(t.prompt, $max_prompt), false) AS p_long,
        coalesce(shorter_than(t.completion, $min_completion), true) AS c_empty,
        coalesce(longer_than(t.completion, $max_completion), false) AS c_long,
        coalesce($keep_all_versions OR list_contains($versions, t.model_version), false) AS t_on_policy,
        -- what the snapshot row takes from the trace (14_content_hash.sql)
        hash(t.trace_id, t.model_version, t.prompt_format, t.session_id, t.user_id, t.tags) AS t_row,
        t._pos AS t_pos
    FROM tr_rows AS t
),
shared AS (
    SELECT t1 FROM known_then GROUP BY t1 HAVING count(*) > 1
),
later_copies AS (
    SELECT t._pos AS t_pos
    FROM tr_rows AS t
    SEMI JOIN (SELECT k.t_pos FROM known_then AS k SEMI JOIN shared AS s ON k.t1 = s.t1) AS c ON t._pos = c.t_pos
    QUALIFY row_number() OVER (PARTITION BY t.trace_id ORDER BY t._ingested_at, t._topic, t._partition, t._offset) > 1
)
SELECT k.*
FROM known_then AS k
ANTI JOIN later_copies AS l ON k.t_pos = l.t_pos
