-- Trainable rows: a thumb as it is; an edit becomes the user's completion (desirable)
-- and the original completion (undesirable).
WITH
usable AS (
    -- status and on_policy are settled here; dropping them keeps every later table narrower
    SELECT * EXCLUDE (status, on_policy) FROM joined WHERE status IN ('joined', 'self_contained') AND on_policy
),
expanded AS (
    SELECT * EXCLUDE (eh, e_empty, e_long, up), CASE WHEN is_rating THEN 'rating' ELSE 'thumb' END AS source,
        up AS label
    FROM usable WHERE NOT is_edit
    UNION ALL BY NAME
    SELECT * EXCLUDE (ch, c_empty, c_long, up) RENAME (eh AS ch, e_empty AS c_empty, e_long AS c_long),
        'edit' AS source, true AS label
    FROM usable WHERE is_edit
    UNION ALL BY NAME
    SELECT * EXCLUDE (eh, e_empty, e_long, up), 'edit_original' AS source, false AS label
    FROM usable WHERE is_edit
)
SELECT
    * EXCLUDE (is_edit, is_rating, e_key),
    -- a stable pseudo-random rank (the same for a given DuckDB version; md5 was 15x slower) for
    -- caps and downsampling: a seeded hash of the event (e_key is its event_id's hash) and source
    hash($seed, e_key, source) AS rk
FROM expanded
