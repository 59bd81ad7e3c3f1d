-- The snapshot's rows with their text, read back by file position for the rows that made it, with
-- PII redacted, both splits in one stream (column `is_eval`): snapshot.write_splits sends each row
-- to its split's file as the stream goes, so the lake's text is read once for both.
-- The rows (narrow) are the build side of the joins; the text is only ever on the probe side, so
-- it streams from the lake files to the snapshot files and is never held, sorted or spilled.
WITH
-- What each row takes from its action (by position), for rows whose text is in a trace.
keys AS (
    SELECT
        k.t_pos, k.source, k.label, k.is_eval, b.event_id, b.user_id, b.event_time,
        CASE WHEN k.source = 'edit' THEN b.edited_completion END AS edited
    FROM feedback_src AS b
    JOIN final_rows AS k ON b._pos = k.fb_pos
    WHERE k.from_trace
),
from_traces AS (
    SELECT
        t.prompt AS prompt_raw, coalesce(t.prompt_format, 'text') AS prompt_format,
        coalesce(k.edited, t.completion) AS completion_raw,
        k.label, t.trace_id, t.model_version, k.event_time, k.source::VARCHAR AS source, t.session_id,
        coalesce(k.user_id, t.user_id) AS user_id, coalesce(t.tags, '{}') AS tags, k.event_id, k.is_eval
    FROM traces_src AS t
    JOIN keys AS k ON t._pos = k.t_pos
),
-- Self-contained feedback brings its own text.
self_contained AS (
    SELECT
        b.prompt AS prompt_raw, coalesce(b.prompt_format, 'text') AS prompt_format,
        CASE WHEN k.source = 'edit' THEN b.edited_completion ELSE b.completion END AS completion_raw,
        k.label, b.trace_id, b.model_version, b.event_time, k.source::VARCHAR AS source, NULL::VARCHAR AS session_id,
        b.user_id, '{}' AS tags, b.event_id, k.is_eval
    FROM feedback_src AS b
    JOIN final_rows AS k ON b._pos = k.fb_pos
    WHERE NOT k.from_trace
),
assembled AS (
    SELECT * FROM from_traces
    UNION ALL
    SELECT * FROM self_contained
),
flagged AS (
    SELECT
        *,
        $redact AND pii_candidate(prompt_raw) AS p_cand,
        $redact AND pii_candidate(completion_raw) AS c_cand
    FROM assembled
),
-- Only candidate texts go through the four redaction stages (CASE evaluates a branch only for its
-- rows, and the flags are computed once: a WHERE on them would be pushed down and evaluated per
-- branch); a stage that changed a text found its kind.
emails AS (
    SELECT
        *,
        CASE WHEN p_cand THEN redact_email(prompt_raw) ELSE prompt_raw END AS p1,
        CASE WHEN c_cand THEN redact_email(completion_raw) ELSE completion_raw END AS c1
    FROM flagged
),
cards AS (
    SELECT
        *,
        CASE WHEN p_cand THEN redact_card(p1) ELSE p1 END AS p2,
        CASE WHEN c_cand THEN redact_card(c1) ELSE c1 END AS c2
    FROM emails
),
ips AS (
    SELECT
        *,
        CASE WHEN p_cand THEN redact_ip(p2) ELSE p2 END AS p3,
        CASE WHEN c_cand THEN redact_ip(c2) ELSE c2 END AS c3
    FROM cards
),
phones AS (
    SELECT
        *,
        CASE WHEN p_cand THEN redact_phone(p3) ELSE p3 END AS p4,
        CASE WHEN c_cand THEN redact_phone(c3) ELSE c3 END AS c4
    FROM ips
)
SELECT
    p4 AS prompt, prompt_format, c4 AS completion,
    label, trace_id, model_version, event_time, source, session_id, user_id, tags, event_id,
    -- audit columns: lengths after redaction, and the PII kinds redacted in the row (a candidate
    -- text is never NULL, so `<>` compares two texts)
    length(p4)::INTEGER AS prompt_chars, length(c4)::INTEGER AS completion_chars,
    CASE WHEN p_cand OR c_cand THEN concat_ws(',',
        CASE WHEN (p_cand AND p1 <> prompt_raw) OR (c_cand AND c1 <> completion_raw) THEN 'email' END,
        CASE WHEN (p_cand AND p2 <> p1) OR (c_cand AND c2 <> c1) THEN 'card' END,
        CASE WHEN (p_cand AND p3 <> p2) OR (c_cand AND c3 <> c2) THEN 'ip' END,
        CASE WHEN (p_cand AND p4 <> p3) OR (c_cand AND c4 <> c3) THEN 'phone' END
    ) ELSE '' END AS redacted,
    is_eval
FROM phones
