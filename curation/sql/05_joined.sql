-- Each kept action joined to its trace: joined, self-contained, pending (trace may still arrive),
-- orphaned (grace window over) or invalid; and whether its model version is still on-policy.
WITH
recent_actions AS (
    SELECT * FROM latest WHERE recent
),
matched AS (
    SELECT
        f.*, t.trace_id IS NOT NULL AS has_trace, t.session_id, t.user_id AS trace_user_id,
        t.model_version AS t_model_version, t.t_pos, t.ph, t.ch, t.plen, t.ptrim, t.clen, t.ctrim
    FROM recent_actions AS f
    LEFT JOIN tr AS t USING (trace_id)
),
classified AS (
    SELECT
        *,
        CASE
            WHEN kind NOT IN ('thumb', 'edit') OR (kind = 'thumb' AND label IS DISTINCT FROM 'up'
                AND label IS DISTINCT FROM 'down') THEN 'invalid'
            WHEN has_trace THEN 'joined'
            WHEN self_contained THEN 'self_contained'
            WHEN event_time > $grace_cutoff THEN 'pending'
            ELSE 'orphaned'
        END AS status,
        CASE WHEN has_trace THEN t_model_version ELSE model_version END AS served_by
    FROM matched
)
SELECT
    event_id, trace_id, user_key, coalesce(user_id, trace_user_id) AS user_id, session_id, event_time,
    kind, label = 'up' AS up, status, has_trace AS from_trace, served_by AS model_version,
    $keep_all_versions OR list_contains($versions, served_by) AS on_policy,
    CASE WHEN has_trace THEN ph ELSE fb_ph END AS ph,
    CASE WHEN has_trace THEN ch ELSE fb_ch END AS ch,
    CASE WHEN has_trace THEN plen ELSE fb_plen END AS plen,
    CASE WHEN has_trace THEN ptrim ELSE fb_ptrim END AS ptrim,
    CASE WHEN has_trace THEN clen ELSE fb_clen END AS clen,
    CASE WHEN has_trace THEN ctrim ELSE fb_ctrim END AS ctrim,
    eh, elen, etrim, fb_pos, t_pos
FROM classified
