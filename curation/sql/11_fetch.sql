-- The last step reads the text: only for the rows that made it, then redacts PII and
-- flags which kinds it found (for the counts).
WITH
need_traces AS (
    SELECT DISTINCT trace_id FROM final_rows WHERE from_trace
),
need_feedback AS (
    SELECT DISTINCT event_id FROM final_rows WHERE NOT from_trace OR source = 'edit'
),
trace_text AS (
    SELECT t.trace_id, t.prompt, t.prompt_format, t.completion, t.tags
    FROM traces_src AS t
    SEMI JOIN need_traces USING (trace_id)
    WHERE t.event_time <= $as_of AND t._ingested_at <= $as_of
    QUALIFY row_number() OVER (PARTITION BY t.trace_id ORDER BY t._ingested_at, t._topic, t._partition, t._offset) = 1
),
feedback_text AS (
    SELECT b.event_id, b.prompt, b.prompt_format, b.completion, b.edited_completion
    FROM feedback_src AS b
    SEMI JOIN need_feedback USING (event_id)
    WHERE b.event_time <= $as_of AND b._ingested_at <= $as_of
    QUALIFY row_number() OVER (PARTITION BY b.event_id ORDER BY b._ingested_at, b._topic, b._partition, b._offset) = 1
),
assembled AS (
    SELECT
        r.*,
        CASE WHEN r.from_trace THEN t.prompt ELSE b.prompt END AS prompt_raw,
        coalesce(CASE WHEN r.from_trace THEN t.prompt_format ELSE b.prompt_format END, 'text') AS prompt_format,
        CASE
            WHEN r.source = 'edit' THEN b.edited_completion
            WHEN r.from_trace THEN t.completion
            ELSE b.completion
        END AS completion_raw,
        coalesce(t.tags, '{}') AS tags
    FROM final_rows AS r
    LEFT JOIN trace_text AS t ON r.from_trace AND t.trace_id = r.trace_id
    LEFT JOIN feedback_text AS b ON b.event_id = r.event_id
),
flagged AS (
    SELECT
        *,
        $redact AND pii_candidate(prompt_raw) AS p_cand,
        $redact AND pii_candidate(completion_raw) AS c_cand
    FROM assembled
),
-- Each stage redacts one kind; a row "has" a kind when that stage changed its text.
emails AS (
    SELECT *,
        CASE WHEN p_cand THEN redact_email(prompt_raw) ELSE prompt_raw END AS p1,
        CASE WHEN c_cand THEN redact_email(completion_raw) ELSE completion_raw END AS c1
    FROM flagged
),
cards AS (
    SELECT *,
        CASE WHEN p_cand THEN redact_card(p1) ELSE p1 END AS p2,
        CASE WHEN c_cand THEN redact_card(c1) ELSE c1 END AS c2
    FROM emails
),
ips AS (
    SELECT *,
        CASE WHEN p_cand THEN redact_ip(p2) ELSE p2 END AS p3,
        CASE WHEN c_cand THEN redact_ip(c2) ELSE c2 END AS c3
    FROM cards
),
phones AS (
    SELECT *,
        CASE WHEN p_cand THEN redact_phone(p3) ELSE p3 END AS p4,
        CASE WHEN c_cand THEN redact_phone(c3) ELSE c3 END AS c4
    FROM ips
)
SELECT
    p4 AS prompt,
    prompt_format,
    c4 AS completion,
    label, trace_id, model_version, event_time, source, session_id, user_id, tags, event_id, split,
    (p_cand OR c_cand) AND (p1 IS DISTINCT FROM prompt_raw OR c1 IS DISTINCT FROM completion_raw) AS has_email,
    (p_cand OR c_cand) AND (p2 IS DISTINCT FROM p1 OR c2 IS DISTINCT FROM c1) AS has_card,
    (p_cand OR c_cand) AND (p3 IS DISTINCT FROM p2 OR c3 IS DISTINCT FROM c2) AS has_ip,
    (p_cand OR c_cand) AND (p4 IS DISTINCT FROM p3 OR c4 IS DISTINCT FROM c3) AS has_phone
FROM phones
