-- The last step reads the text: only for the rows that made it, then redacts PII and
-- flags which kinds it found (for the counts).
WITH
need_traces AS (
    SELECT DISTINCT trace_id, t_topic, t_partition, t_offset FROM final_rows WHERE from_trace
),
need_feedback AS (
    SELECT DISTINCT event_id, fb_topic, fb_partition, fb_offset
    FROM final_rows
    WHERE NOT from_trace OR source = 'edit'
),
-- The copy that won the dedupe, found by its Kafka coordinates: one row per trace, no sort of text.
trace_text AS (
    SELECT t.trace_id, t.prompt, t.prompt_format, t.completion, t.tags
    FROM traces_src AS t
    JOIN need_traces AS n
        ON t.trace_id = n.trace_id AND t._partition = n.t_partition AND t._offset = n.t_offset
        AND t._topic = n.t_topic
),
feedback_text AS (
    SELECT b.event_id, b.prompt, b.prompt_format, b.completion, b.edited_completion
    FROM feedback_src AS b
    JOIN need_feedback AS n
        ON b.event_id = n.event_id AND b._partition = n.fb_partition AND b._offset = n.fb_offset
        AND b._topic = n.fb_topic
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
        $redact AND (pii_candidate(prompt_raw) OR pii_candidate(completion_raw)) AS candidate
    FROM assembled
),
-- Only candidates go through the four redaction stages; a stage that changed a text found its kind.
emails AS (
    SELECT *, redact_email(prompt_raw) AS p1, redact_email(completion_raw) AS c1
    FROM flagged WHERE candidate
),
cards AS (
    SELECT *, redact_card(p1) AS p2, redact_card(c1) AS c2 FROM emails
),
ips AS (
    SELECT *, redact_ip(p2) AS p3, redact_ip(c2) AS c3 FROM cards
),
phones AS (
    SELECT *, redact_phone(p3) AS p4, redact_phone(c3) AS c4 FROM ips
),
columns AS (
    SELECT
        prompt_raw AS prompt, prompt_format, completion_raw AS completion,
        label, trace_id, model_version, event_time, source, session_id, user_id, tags, event_id, split,
        false AS has_email, false AS has_card, false AS has_ip, false AS has_phone
    FROM flagged
    WHERE NOT candidate
    UNION ALL
    SELECT
        p4, prompt_format, c4,
        label, trace_id, model_version, event_time, source, session_id, user_id, tags, event_id, split,
        p1 IS DISTINCT FROM prompt_raw OR c1 IS DISTINCT FROM completion_raw,
        p2 IS DISTINCT FROM p1 OR c2 IS DISTINCT FROM c1,
        p3 IS DISTINCT FROM p2 OR c3 IS DISTINCT FROM c2,
        p4 IS DISTINCT FROM p3 OR c4 IS DISTINCT FROM c3
    FROM phones
)
SELECT * FROM columns
