-- The actions that do not count, by position, with why: a later copy of an event (a retried send
-- reuses its event_id; the first copy to land wins), or an action its user superseded on the same
-- trace (the latest wins: a flip from down to up is an up; ties go to the larger event_id).
-- Almost every action is the only copy of its event and its user's only action on its trace: two
-- aggregates over the hashed keys find the rest (a collision only adds a row to them), whose real
-- keys are read back from the files and ranked exactly.
WITH
shared_events AS (
    SELECT e_key FROM fb_all GROUP BY e_key HAVING count(*) > 1
),
shared_groups AS (
    SELECT g_key FROM fb_all GROUP BY g_key HAVING count(*) > 1
),
candidates AS (
    SELECT f.fb_pos FROM fb_all AS f SEMI JOIN shared_events AS s ON f.e_key = s.e_key
    UNION
    SELECT f.fb_pos FROM fb_all AS f SEMI JOIN shared_groups AS s ON f.g_key = s.g_key
),
keyed AS (
    SELECT
        b._pos AS fb_pos, b.event_id, coalesce(b.user_id, 'anonymous:' || b.event_id) AS user_key,
        b.trace_id, b.event_time, b._ingested_at, b._topic, b._partition, b._offset
    FROM feedback_src AS b
    SEMI JOIN candidates AS c ON b._pos = c.fb_pos
),
copies AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY event_id ORDER BY _ingested_at, _topic, _partition, _offset) AS copy
    FROM keyed
),
ranked AS (
    SELECT
        fb_pos,
        row_number() OVER (PARTITION BY user_key, trace_id ORDER BY event_time DESC, event_id DESC) AS rank
    FROM copies
    WHERE copy = 1
)
SELECT fb_pos, 'duplicate' AS reason FROM copies WHERE copy > 1
UNION ALL
SELECT fb_pos, 'superseded' AS reason FROM ranked WHERE rank > 1
