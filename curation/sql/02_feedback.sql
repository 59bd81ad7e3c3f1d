-- Every feedback action known at --as-of, one row per copy, as numbers and flags only (about
-- 60 bytes a row, so 10 M actions stay in memory): hashed keys, what the later steps decide on,
-- and the row's place in the files (`feedback_pos`, see pipeline._source). The strings stay on
-- disk: 03 hashes the few texts feedback carries itself, 04 reads the real keys of the few rows
-- that share a key, and 13_fetch.sql reads the snapshot's strings back by position.
WITH
feedback_files AS NOT MATERIALIZED (SELECT * FROM feedback_src),
known_then AS (
    SELECT
        *, coalesce(kind, 'thumb') AS action_kind, coalesce(user_id, 'anonymous:' || event_id) AS user_key
    FROM feedback_files
    WHERE event_time <= $as_of AND _ingested_at <= $as_of
),
rated AS (
    -- a rating by its place on its scale (0 = min, 1 = max) against the thresholds, or by its
    -- category in the configured lists; null for other kinds
    SELECT
        *,
        CASE
            WHEN action_kind <> 'rating' THEN NULL
            WHEN score IS NOT NULL AND scale_max > scale_min THEN CASE
                WHEN (score - scale_min) / (scale_max - scale_min) >= $rating_up_at THEN 'desirable'
                WHEN (score - scale_min) / (scale_max - scale_min) <= $rating_down_at THEN 'undesirable'
                ELSE 'between'
            END
            WHEN list_contains($up_categories, label) THEN 'desirable'
            WHEN list_contains($down_categories, label) THEN 'undesirable'
            ELSE 'unmapped'
        END AS rating_class
    FROM known_then
)
SELECT
    hash(event_id) AS event_hash,
    -- an anonymous action is its own user: it cannot overrule anyone
    hash(user_key, trace_id) AS user_trace_hash,
    -- the trace, by two independent 64-bit hashes: a join on 128 bits cannot meet a collision
    hash(trace_id) AS trace_hash, hash('trace', trace_id) AS trace_hash_salted,
    -- the user, for the cap per user (two users share a cap only if their 64-bit hashes collide)
    hash(user_key) AS user_hash,
    action_kind = 'edit' AS is_edit,
    action_kind = 'rating' AS is_rating,
    CASE WHEN action_kind = 'rating' THEN rating_class = 'desirable' ELSE label = 'up' END AS up,
    CASE
        WHEN action_kind = 'thumb' THEN coalesce(label IN ('up', 'down'), false)
        WHEN action_kind = 'rating' THEN rating_class IN ('desirable', 'undesirable')
        ELSE action_kind = 'edit'
    END AS valid,
    rating_class,
    prompt IS NOT NULL AND completion IS NOT NULL AND model_version IS NOT NULL AS self_contained,
    coalesce($keep_all_versions OR list_contains($versions, model_version), false) AS feedback_on_policy,
    event_time >= $cutoff AS recent,
    event_time > $grace_cutoff AS in_grace,
    -- what the snapshot row takes from this action (14_content_hash.sql)
    hash(event_id, trace_id, user_id, event_time, prompt_format, model_version) AS feedback_row_hash,
    _pos AS feedback_pos
FROM rated
