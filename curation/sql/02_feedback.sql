-- One row per event_id (a retried send reuses it), with each user's latest action on a trace flagged.
-- Only keys, hashes and lengths are kept: the text stays on disk until 11_fetch.sql.
WITH
known_then AS (
    SELECT
        event_id, trace_id, user_id, event_time, coalesce(kind, 'thumb') AS kind, label, model_version,
        prompt IS NOT NULL AND completion IS NOT NULL AND model_version IS NOT NULL AS self_contained,
        hash(prompt) AS fb_ph, hash(completion) AS fb_ch,
        length(prompt) AS fb_plen, length(trim(prompt)) AS fb_ptrim,
        length(completion) AS fb_clen, length(trim(completion)) AS fb_ctrim,
        hash(edited_completion) AS eh, length(edited_completion) AS elen, length(trim(edited_completion)) AS etrim,
        _ingested_at, _topic, _partition, _offset
    FROM feedback_src
    WHERE event_time <= $as_of AND _ingested_at <= $as_of
),
deduped AS (
    SELECT * EXCLUDE (_ingested_at, _topic, _partition, _offset)
    FROM known_then
    -- the first copy to land wins; copies of one event_id are the same action
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _ingested_at, _topic, _partition, _offset) = 1
),
keyed AS (
    -- an anonymous action is its own user: it cannot overrule anyone
    SELECT *, coalesce(user_id, 'anonymous:' || event_id) AS user_key FROM deduped
)
SELECT
    *,
    row_number() OVER (PARTITION BY user_key, trace_id ORDER BY event_time DESC, event_id DESC) = 1 AS is_latest,
    event_time >= $cutoff AS recent
FROM keyed
