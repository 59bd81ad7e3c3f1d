-- The actions that do not count, by position, with why: a later copy of an event (a retried send
-- reuses its event_id; the first copy to land wins), or an action its user superseded on the same
-- trace (the latest wins: a flip from down to up is an up; ties go to the larger event_id).
-- Almost every action is the only copy of its event and its user's only action on its trace: two
-- aggregates over the hashed keys find the rest (a collision only adds a row to them), whose real
-- keys are read back from the files and ranked exactly. Counted by counts/04_dropped.sql.
WITH
actions AS NOT MATERIALIZED (SELECT * FROM feedback),
feedback_files AS NOT MATERIALIZED (SELECT * FROM feedback_src),
shared_events AS (
    SELECT event_hash FROM actions GROUP BY event_hash HAVING count(*) > 1
),
shared_groups AS (
    SELECT user_trace_hash FROM actions GROUP BY user_trace_hash HAVING count(*) > 1
),
candidates AS (
    SELECT a.feedback_pos FROM actions AS a SEMI JOIN shared_events AS s ON a.event_hash = s.event_hash
    UNION
    SELECT a.feedback_pos FROM actions AS a SEMI JOIN shared_groups AS s ON a.user_trace_hash = s.user_trace_hash
),
keyed AS (
    SELECT
        b._pos AS feedback_pos, b.event_id, coalesce(b.user_id, 'anonymous:' || b.event_id) AS user_key,
        b.trace_id, b.event_time, b._ingested_at, b._topic, b._partition, b._offset
    FROM feedback_files AS b
    SEMI JOIN candidates AS c ON b._pos = c.feedback_pos
),
copies AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY event_id ORDER BY _ingested_at, _topic, _partition, _offset) AS copy
    FROM keyed
),
ranked AS (
    SELECT
        feedback_pos,
        row_number() OVER (PARTITION BY user_key, trace_id ORDER BY event_time DESC, event_id DESC) AS rank
    FROM copies
    WHERE copy = 1
)
SELECT feedback_pos, 'duplicate' AS reason FROM copies WHERE copy > 1
UNION ALL
SELECT feedback_pos, 'superseded' AS reason FROM ranked WHERE rank > 1
