-- Each counted recent action joined to its trace: joined, self-contained, pending (its trace may
-- still arrive), orphaned (grace window over) or invalid; and whether the model version that
-- served it is still on-policy. Every column is a number or a flag.
WITH
actions AS (
    SELECT f.*
    FROM fb_all AS f
    ANTI JOIN dropped AS d ON f.fb_pos = d.fb_pos
    WHERE f.recent
),
matched AS (
    SELECT
        a.*, t.t_pos IS NOT NULL AS has_trace, t.split_key, t.ph, t.ch, t.p_empty, t.p_long, t.c_empty,
        t.c_long, t.t_on_policy, t.t_row, t.t_pos,
        x.eh, x.e_empty, x.e_long, x.sc_ph, x.sc_ch, x.sc_p_empty, x.sc_p_long, x.sc_c_empty, x.sc_c_long,
        x.sc_split_key
    FROM actions AS a
    LEFT JOIN tr AS t ON a.t1 = t.t1 AND a.t2 = t.t2
    LEFT JOIN fb_text AS x ON a.fb_pos = x.fb_pos
)
SELECT
    CASE
        WHEN NOT valid AND is_rating THEN 'untrained_rating'
        WHEN NOT valid THEN 'invalid'
        WHEN has_trace THEN 'joined'
        WHEN self_contained THEN 'self_contained'
        WHEN in_grace THEN 'pending'
        ELSE 'orphaned'
    END AS status,
    CASE WHEN has_trace THEN t_on_policy ELSE fb_on_policy END AS on_policy,
    is_edit, is_rating, up, has_trace AS from_trace, uk,
    CASE WHEN has_trace THEN split_key ELSE sc_split_key END AS split_key,
    CASE WHEN has_trace THEN ph ELSE sc_ph END AS ph,
    CASE WHEN has_trace THEN ch ELSE sc_ch END AS ch,
    CASE WHEN has_trace THEN p_empty ELSE sc_p_empty END AS p_empty,
    CASE WHEN has_trace THEN p_long ELSE sc_p_long END AS p_long,
    CASE WHEN has_trace THEN c_empty ELSE sc_c_empty END AS c_empty,
    CASE WHEN has_trace THEN c_long ELSE sc_c_long END AS c_long,
    eh, e_empty, e_long, e_key, hash(fb_row, t_row) AS row_key, fb_pos, t_pos
FROM matched
