-- Each counted recent action joined to its trace: joined, self-contained, pending (its trace may
-- still arrive), orphaned (grace window over) or invalid; and whether the model version that
-- served it is still on-policy. Every column is a number or a flag. Counted by
-- counts/06_joined.sql.
WITH
feedback_actions AS NOT MATERIALIZED (SELECT * FROM feedback),
dropped_actions AS NOT MATERIALIZED (SELECT * FROM dropped),
own_text AS NOT MATERIALIZED (SELECT * FROM feedback_text),
matched_traces AS NOT MATERIALIZED (SELECT * FROM traces),
actions AS (
    SELECT f.*
    FROM feedback_actions AS f
    ANTI JOIN dropped_actions AS d ON f.feedback_pos = d.feedback_pos
    WHERE f.recent
),
matched AS (
    SELECT
        a.*, t.trace_pos IS NOT NULL AS has_trace, t.split_key, t.prompt_hash, t.completion_hash,
        t.prompt_empty, t.prompt_too_long, t.completion_empty, t.completion_too_long, t.trace_on_policy,
        t.trace_row_hash, t.trace_pos,
        x.edited_hash, x.edited_empty, x.edited_too_long, x.own_prompt_hash, x.own_completion_hash,
        x.own_prompt_empty, x.own_prompt_too_long, x.own_completion_empty, x.own_completion_too_long,
        x.own_split_key
    FROM actions AS a
    LEFT JOIN matched_traces AS t ON a.trace_hash = t.trace_hash AND a.trace_hash_salted = t.trace_hash_salted
    LEFT JOIN own_text AS x ON a.feedback_pos = x.feedback_pos
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
    CASE WHEN has_trace THEN trace_on_policy ELSE feedback_on_policy END AS on_policy,
    is_edit, is_rating, up, has_trace AS from_trace, user_hash,
    CASE WHEN has_trace THEN split_key ELSE own_split_key END AS split_key,
    CASE WHEN has_trace THEN prompt_hash ELSE own_prompt_hash END AS prompt_hash,
    CASE WHEN has_trace THEN completion_hash ELSE own_completion_hash END AS completion_hash,
    CASE WHEN has_trace THEN prompt_empty ELSE own_prompt_empty END AS prompt_empty,
    CASE WHEN has_trace THEN prompt_too_long ELSE own_prompt_too_long END AS prompt_too_long,
    CASE WHEN has_trace THEN completion_empty ELSE own_completion_empty END AS completion_empty,
    CASE WHEN has_trace THEN completion_too_long ELSE own_completion_too_long END AS completion_too_long,
    edited_hash, edited_empty, edited_too_long, event_hash,
    hash(feedback_row_hash, trace_row_hash) AS row_key, feedback_pos, trace_pos
FROM matched
