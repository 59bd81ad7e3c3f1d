-- One row per event_id (a retried send reuses it): the first copy to land wins.
-- Only keys, hashes and lengths are kept: the text stays on disk until 12_fetch.sql.
WITH
known_then AS (
    SELECT
        event_id, trace_id, user_id, event_time, coalesce(kind, 'thumb') AS kind, label, model_version,
        prompt IS NOT NULL AND completion IS NOT NULL AND model_version IS NOT NULL AS self_contained,
        hash(prompt) AS fb_ph, hash(completion) AS fb_ch,
        -- lengths fit 32 bits: half the width of length()'s BIGINT in every table below
        length(prompt)::INTEGER AS fb_plen, trimmed_length(prompt)::INTEGER AS fb_ptrim,
        length(completion)::INTEGER AS fb_clen, trimmed_length(completion)::INTEGER AS fb_ctrim,
        hash(edited_completion) AS eh, length(edited_completion)::INTEGER AS elen,
        trimmed_length(edited_completion)::INTEGER AS etrim,
        -- the winner's place in the files (one BIGINT, see pipeline._source) lets 12_fetch.sql read
        -- exactly this copy's text; the Kafka coordinates only order the copies
        _pos AS fb_pos, _ingested_at, _topic, _partition, _offset
    FROM feedback_src
    WHERE event_time <= $as_of AND _ingested_at <= $as_of
),
deduped AS (
    -- row_number() measured faster here than arg_min() over the whole row (1.4 s against 6.5 s per 1 M)
    SELECT *
    FROM known_then
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _ingested_at, _topic, _partition, _offset) = 1
)
SELECT
    * EXCLUDE (_ingested_at, _topic, _partition, _offset),
    -- an anonymous action is its own user: it cannot overrule anyone
    coalesce(user_id, 'anonymous:' || event_id) AS user_key,
    event_time >= $cutoff AS recent
FROM deduped
