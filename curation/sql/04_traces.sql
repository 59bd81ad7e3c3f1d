-- Key columns of the traces that kept feedback points at, one row per trace_id (first copy wins).
WITH
wanted AS (
    SELECT DISTINCT trace_id FROM latest WHERE recent
),
known_then AS (
    SELECT
        t.trace_id, t.model_version, t.session_id, t.user_id,
        hash(t.prompt) AS ph, hash(t.completion) AS ch,
        length(t.prompt)::INTEGER AS plen, trimmed_length(t.prompt)::INTEGER AS ptrim,
        length(t.completion)::INTEGER AS clen, trimmed_length(t.completion)::INTEGER AS ctrim,
        t._pos AS t_pos, t._ingested_at, t._topic, t._partition, t._offset
    FROM traces_src AS t
    SEMI JOIN wanted USING (trace_id)
    WHERE t.event_time <= $as_of AND t._ingested_at <= $as_of
)
SELECT * EXCLUDE (_ingested_at, _topic, _partition, _offset)
FROM known_then
QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY _ingested_at, _topic, _partition, _offset) = 1
