-- The snapshot's rows with their text, read back by file position for the rows that made it, with
-- PII redacted, both splits in one stream (column `is_eval`): snapshot.write_splits sends each row
-- to its split's file as the stream goes, so the lake's text is read once for both. A chat prompt
-- is written twice: as its JSON text (`prompt`) and as structs (`messages`).
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
-- Only candidate texts go through the redaction stages (CASE evaluates a branch only for its
-- rows, and the flags are computed once: a WHERE on them would be pushed down and evaluated per
-- branch); an RE2 stage that changed a text found its kind, and the Python stage (`pii_checked`,
-- curation/pii.py) says which kinds it found. It sees only the texts pii_py_candidate selects.
secrets AS (
    SELECT
        *,
        CASE WHEN p_cand THEN redact_secret(prompt_raw) ELSE prompt_raw END AS p1,
        CASE WHEN c_cand THEN redact_secret(completion_raw) ELSE completion_raw END AS c1
    FROM flagged
),
emails AS (
    SELECT
        *,
        CASE WHEN p_cand THEN redact_email(p1) ELSE p1 END AS p2,
        CASE WHEN c_cand THEN redact_email(c1) ELSE c1 END AS c2
    FROM secrets
),
checked AS (
    SELECT
        *,
        CASE WHEN p_cand AND pii_py_candidate(p2) THEN pii_checked(p2) END AS pk,
        CASE WHEN c_cand AND pii_py_candidate(c2) THEN pii_checked(c2) END AS ck
    FROM emails
),
redacted AS (
    SELECT
        *,
        coalesce(pk.text, p2) AS p3,
        coalesce(ck.text, c2) AS c3,
        -- each kind's flag: found in the prompt or in the completion (NULL when neither stage ran)
        (p_cand AND p1 <> prompt_raw) OR (c_cand AND c1 <> completion_raw) AS k_secret,
        (p_cand AND p2 <> p1) OR (c_cand AND c2 <> c1) AS k_email,
        pk.ip OR ck.ip AS k_ip,
        pk.card OR ck.card AS k_card,
        pk.phone OR ck.phone AS k_phone,
        pk.ssn OR ck.ssn AS k_ssn,
        pk.iban OR ck.iban AS k_iban
    FROM checked
)
SELECT
    p3 AS prompt, prompt_format,
    -- a chat prompt's messages as a list of {role, content} structs (the conversational format of
    -- TRL and `datasets`), parsed from the redacted JSON text; NULL for text prompts. Other keys of
    -- a message are not kept (they stay in `prompt`); a non-string content is kept as its JSON.
    CASE WHEN prompt_format = 'messages' AND json_valid(p3) AND json_type(p3) = 'ARRAY'
        THEN from_json(p3, '[{"role": "VARCHAR", "content": "VARCHAR"}]') END AS messages,
    c3 AS completion,
    label, trace_id, model_version, event_time, source, session_id, user_id, tags, event_id,
    -- audit columns: lengths after redaction, and the PII kinds redacted in the row, in the order
    -- of curation.pii.KINDS (a candidate text is never NULL, so `<>` compares two texts)
    length(p3)::INTEGER AS prompt_chars, length(c3)::INTEGER AS completion_chars,
    CASE WHEN p_cand OR c_cand THEN concat_ws(',',
        CASE WHEN k_email THEN 'email' END,
        CASE WHEN k_card THEN 'card' END,
        CASE WHEN k_ip THEN 'ip' END,
        CASE WHEN k_phone THEN 'phone' END,
        CASE WHEN k_ssn THEN 'ssn' END,
        CASE WHEN k_iban THEN 'iban' END,
        CASE WHEN k_secret THEN 'secret' END
    ) ELSE '' END AS redacted,
    is_eval
FROM redacted
