-- The traces recent feedback points at (05_trace_rows.sql), one row per trace_id (the first copy
-- to land wins), as hashes, length checks and flags: their text is hashed and measured here and
-- not kept. As in 04_dropped.sql, only trace_ids seen more than once are ranked by their real keys.
WITH
matched AS NOT MATERIALIZED (SELECT * FROM trace_rows),
known_then AS MATERIALIZED (
    SELECT
        hash(t.trace_id) AS trace_hash, hash('trace', t.trace_id) AS trace_hash_salted,
        CASE WHEN $split_by = 'prompt' THEN hash($seed, hash(t.prompt))
            ELSE hash($seed, coalesce(t.session_id, t.trace_id)) END AS split_key,
        hash(t.prompt) AS prompt_hash, hash(t.completion) AS completion_hash,
        coalesce(shorter_than(t.prompt, $min_prompt), true) AS prompt_empty,
        coalesce(longer_than(t.prompt, $max_prompt), false) AS prompt_too_long,
        coalesce(shorter_than(t.completion, $min_completion), true) AS completion_empty,
        coalesce(longer_than(t.completion, $max_completion), false) AS completion_too_long,
        coalesce($keep_all_versions OR list_contains($versions, t.model_version), false) AS trace_on_policy,
        -- what the snapshot row takes from the trace (14_content_hash.sql)
        hash(t.trace_id, t.model_version, t.prompt_format, t.session_id, t.user_id, t.tags) AS trace_row_hash,
        t._pos AS trace_pos
    FROM matched AS t
),
shared AS (
    SELECT trace_hash FROM known_then GROUP BY trace_hash HAVING count(*) > 1
),
later_copies AS (
    SELECT t._pos AS trace_pos
    FROM matched AS t
    SEMI JOIN (
        SELECT k.trace_pos FROM known_then AS k SEMI JOIN shared AS s ON k.trace_hash = s.trace_hash
    ) AS c ON t._pos = c.trace_pos
    QUALIFY row_number() OVER (PARTITION BY t.trace_id ORDER BY t._ingested_at, t._topic, t._partition, t._offset) > 1
)
SELECT k.*
FROM known_then AS k
ANTI JOIN later_copies AS l ON k.trace_pos = l.trace_pos
