-- A user's latest action on a trace wins (a flip from down to up is an up); ties go to the
-- larger event_id so the choice is stable. event_id is unique here (02_feedback.sql), so the
-- winners are found by a hash aggregate over two keys and a semi join, not a sort of every row.
WITH
winners AS (
    SELECT arg_max(event_id, (event_time, event_id)) AS event_id
    FROM fb
    GROUP BY user_key, trace_id
)
SELECT f.*
FROM fb AS f
SEMI JOIN winners AS w ON f.event_id = w.event_id
