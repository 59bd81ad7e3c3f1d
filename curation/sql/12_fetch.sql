-- The last step reads the text: only for the rows that made it, then redacts PII and
-- flags which kinds it found (for the counts).
WITH
need_traces AS (
    SELECT DISTINCT t_pos FROM final_rows WHERE from_trace
),
need_feedback AS (
    SELECT DISTINCT fb_pos
    FROM final_rows
    WHERE NOT from_trace OR source = 'edit'
),
-- The copy that won the dedupe, found by its place in the files (an integer join key): one row per
-- trace, no sort of text.
trace_text AS (
    SELECT t._pos AS t_pos, t.prompt, t.prompt_format, t.completion, t.tags
    FROM traces_src AS t
    SEMI JOIN need_traces AS n ON t._pos = n.t_pos
),
feedback_text AS (
    SELECT b._pos AS fb_pos, b.prompt, b.prompt_format, b.completion, b.edited_completion
    FROM feedback_src AS b
    SEMI JOIN need_feedback AS n ON b._pos = n.fb_pos
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
    LEFT JOIN trace_text AS t ON r.from_trace AND t.t_pos = r.t_pos
    LEFT JOIN feedback_text AS b ON b.fb_pos = r.fb_pos
),
flagged AS (
    SELECT
        *,
        $redact AND (pii_candidate(prompt_raw) OR pii_candidate(completion_raw)) AS candidate
    FROM assembled
),
-- Only candidates go through the four redaction stages (CASE evaluates a branch only for its rows,
-- and `candidate` is computed once: a WHERE on it would be pushed down and evaluated per branch);
-- a stage that changed a text found its kind.
emails AS (
    SELECT
        *,
        CASE WHEN candidate THEN redact_email(prompt_raw) ELSE prompt_raw END AS p1,
        CASE WHEN candidate THEN redact_email(completion_raw) ELSE completion_raw END AS c1
    FROM flagged
),
cards AS (
    SELECT
        *,
        CASE WHEN candidate THEN redact_card(p1) ELSE p1 END AS p2,
        CASE WHEN candidate THEN redact_card(c1) ELSE c1 END AS c2
    FROM emails
),
ips AS (
    SELECT
        *,
        CASE WHEN candidate THEN redact_ip(p2) ELSE p2 END AS p3,
        CASE WHEN candidate THEN redact_ip(c2) ELSE c2 END AS c3
    FROM cards
),
phones AS (
    SELECT
        *,
        CASE WHEN candidate THEN redact_phone(p3) ELSE p3 END AS p4,
        CASE WHEN candidate THEN redact_phone(c3) ELSE c3 END AS c4
    FROM ips
)
SELECT
    p4 AS prompt, prompt_format, c4 AS completion,
    label, trace_id, model_version, event_time, source, session_id, user_id, tags, event_id, split,
    CASE WHEN candidate THEN p1 IS DISTINCT FROM prompt_raw OR c1 IS DISTINCT FROM completion_raw ELSE false END
        AS has_email,
    CASE WHEN candidate THEN p2 IS DISTINCT FROM p1 OR c2 IS DISTINCT FROM c1 ELSE false END AS has_card,
    CASE WHEN candidate THEN p3 IS DISTINCT FROM p2 OR c3 IS DISTINCT FROM c2 ELSE false END AS has_ip,
    CASE WHEN candidate THEN p4 IS DISTINCT FROM p3 OR c4 IS DISTINCT FROM c3 ELSE false END AS has_phone
FROM phones
