-- One row per event_id (a retried send reuses it): the first copy to land wins.
-- Only keys, hashes and lengths are kept: the text stays on disk until 12_fetch.sql.
WITH
known_then AS (
    SELECT
        event_id, trace_id, user_id, event_time, coalesce(kind, 'thumb') AS kind, label, model_version,
        prompt IS NOT NULL AND completion IS NOT NULL AND model_version IS NOT NULL AS self_contained,
        hash(prompt) AS fb_ph, hash(completion) AS fb_ch,
        length(prompt) AS fb_plen, trimmed_length(prompt) AS fb_ptrim,
        length(completion) AS fb_clen, trimmed_length(completion) AS fb_ctrim,
        hash(edited_completion) AS eh, length(edited_completion) AS elen, trimmed_length(edited_completion) AS etrim,
        -- the winner's Kafka coordinates let 12_fetch.sql read exactly this copy's text
        _topic AS fb_topic, _partition AS fb_partition, _offset AS fb_offset, _ingested_at
    FROM feedback_src
    WHERE event_time <= $as_of AND _ingested_at <= $as_of
),
deduped AS (
    -- row_number() measured faster here than arg_min() over the whole row (1.4 s against 6.5 s per 1 M)
    SELECT *
    FROM known_then
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _ingested_at, fb_topic, fb_partition, fb_offset) = 1
)
SELECT
    * EXCLUDE (_ingested_at),
    -- an anonymous action is its own user: it cannot overrule anyone
    coalesce(user_id, 'anonymous:' || event_id) AS user_key,
    event_time >= $cutoff AS recent
FROM deduped
