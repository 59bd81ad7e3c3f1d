-- Trainable rows: a thumb as it is; an edit becomes the user's completion (desirable)
-- and the original completion (undesirable).
WITH
usable AS (
    -- status and on_policy are settled here; dropping them keeps every later table narrower
    SELECT * EXCLUDE (status, on_policy) FROM joined WHERE status IN ('joined', 'self_contained') AND on_policy
),
expanded AS (
    SELECT * EXCLUDE (eh, elen, etrim, up), 'thumb' AS source, up AS label
    FROM usable WHERE kind = 'thumb'
    UNION ALL BY NAME
    SELECT * EXCLUDE (ch, clen, ctrim, up) RENAME (eh AS ch, elen AS clen, etrim AS ctrim), 'edit' AS source, true AS label
    FROM usable WHERE kind = 'edit'
    UNION ALL BY NAME
    SELECT * EXCLUDE (eh, elen, etrim, up), 'edit_original' AS source, false AS label
    FROM usable WHERE kind = 'edit'
)
SELECT
    * EXCLUDE (kind),
    -- a stable pseudo-random rank (the same for a given DuckDB version; md5 was 15x slower) for caps and downsampling
    hash($seed, event_id, source) AS rk
FROM expanded
