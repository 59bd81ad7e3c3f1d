-- The snapshot's rows with their text, read back by file position for the rows that made it, with
-- PII redacted, both splits in one stream (column `is_eval`): snapshot.write_splits sends each row
-- to its split's file as the stream goes, so the lake's text is read once for both. A chat prompt
-- is written twice: as its JSON text (`prompt`) and as structs (`messages`).
-- The rows (narrow) are the build side of the joins; the text is only ever on the probe side, so
-- it streams from the lake files to the snapshot files and is never held, sorted or spilled.
WITH
feedback_files AS NOT MATERIALIZED (SELECT * FROM feedback_src),
trace_files AS NOT MATERIALIZED (SELECT * FROM traces_src),
snapshot_rows AS NOT MATERIALIZED (SELECT * FROM final_rows),
-- What each row takes from its action (by position), for rows whose text is in a trace.
keys AS (
    SELECT
        k.trace_pos, k.source, k.label, k.is_eval, b.event_id, b.user_id, b.event_time,
        CASE WHEN k.source = 'edit' THEN b.edited_completion END AS edited
    FROM feedback_files AS b
    JOIN snapshot_rows AS k ON b._pos = k.feedback_pos
    WHERE k.from_trace
),
from_traces AS (
    SELECT
        t.prompt AS prompt_raw, coalesce(t.prompt_format, 'text') AS prompt_format,
        coalesce(k.edited, t.completion) AS completion_raw,
        k.label, t.trace_id, t.model_version, k.event_time, k.source::VARCHAR AS source, t.session_id,
        coalesce(k.user_id, t.user_id) AS user_id, coalesce(t.tags, '{}') AS tags, k.event_id, k.is_eval
    FROM trace_files AS t
    JOIN keys AS k ON t._pos = k.trace_pos
),
-- Self-contained feedback brings its own text.
self_contained AS (
    SELECT
        b.prompt AS prompt_raw, coalesce(b.prompt_format, 'text') AS prompt_format,
        CASE WHEN k.source = 'edit' THEN b.edited_completion ELSE b.completion END AS completion_raw,
        k.label, b.trace_id, b.model_version, b.event_time, k.source::VARCHAR AS source, NULL::VARCHAR AS session_id,
        b.user_id, '{}' AS tags, b.event_id, k.is_eval
    FROM feedback_files AS b
    JOIN snapshot_rows AS k ON b._pos = k.feedback_pos
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
        $redact AND pii_candidate(prompt_raw) AS prompt_candidate,
        $redact AND pii_candidate(completion_raw) AS completion_candidate
    FROM assembled
),
-- Only candidate texts go through the redaction stages (CASE evaluates a branch only for its
-- rows, and the flags are computed once: a WHERE on them would be pushed down and evaluated per
-- branch); an RE2 stage that changed a text found its kind, and the Python stage (`pii_checked`,
-- curation/pii.py) says which kinds it found. It sees only the texts pii_py_candidate selects.
secrets AS (
    SELECT
        *,
        CASE WHEN prompt_candidate THEN redact_secret(prompt_raw) ELSE prompt_raw END AS prompt_no_secret,
        CASE WHEN completion_candidate THEN redact_secret(completion_raw) ELSE completion_raw END
            AS completion_no_secret
    FROM flagged
),
emails AS (
    SELECT
        *,
        CASE WHEN prompt_candidate THEN redact_email(prompt_no_secret) ELSE prompt_no_secret END
            AS prompt_no_email,
        CASE WHEN completion_candidate THEN redact_email(completion_no_secret) ELSE completion_no_secret END
            AS completion_no_email
    FROM secrets
),
checked AS (
    SELECT
        *,
        CASE WHEN prompt_candidate AND pii_py_candidate(prompt_no_email) THEN pii_checked(prompt_no_email) END
            AS prompt_checked,
        CASE WHEN completion_candidate AND pii_py_candidate(completion_no_email)
            THEN pii_checked(completion_no_email) END AS completion_checked
    FROM emails
),
redacted AS (
    SELECT
        *,
        coalesce(prompt_checked.text, prompt_no_email) AS prompt_redacted,
        coalesce(completion_checked.text, completion_no_email) AS completion_redacted,
        -- each kind's flag: found in the prompt or in the completion (NULL when neither stage ran)
        (prompt_candidate AND prompt_no_secret <> prompt_raw)
            OR (completion_candidate AND completion_no_secret <> completion_raw) AS found_secret,
        (prompt_candidate AND prompt_no_email <> prompt_no_secret)
            OR (completion_candidate AND completion_no_email <> completion_no_secret) AS found_email,
        prompt_checked.ip OR completion_checked.ip AS found_ip,
        prompt_checked.card OR completion_checked.card AS found_card,
        prompt_checked.phone OR completion_checked.phone AS found_phone,
        prompt_checked.ssn OR completion_checked.ssn AS found_ssn,
        prompt_checked.iban OR completion_checked.iban AS found_iban
    FROM checked
)
SELECT
    prompt_redacted AS prompt, prompt_format,
    -- a chat prompt's messages as a list of {role, content} structs (the conversational format of
    -- TRL and `datasets`), parsed from the redacted JSON text; NULL for text prompts. Other keys of
    -- a message are not kept (they stay in `prompt`); a non-string content is kept as its JSON.
    CASE WHEN prompt_format = 'messages' AND json_valid(prompt_redacted) AND json_type(prompt_redacted) = 'ARRAY'
        THEN from_json(prompt_redacted, '[{"role": "VARCHAR", "content": "VARCHAR"}]') END AS messages,
    completion_redacted AS completion,
    label, trace_id, model_version, event_time, source, session_id, user_id, tags, event_id,
    -- audit columns: lengths after redaction, and the PII kinds redacted in the row, in the order
    -- of curation.pii.KINDS (a candidate text is never NULL, so `<>` compares two texts)
    length(prompt_redacted)::INTEGER AS prompt_chars, length(completion_redacted)::INTEGER AS completion_chars,
    CASE WHEN prompt_candidate OR completion_candidate THEN concat_ws(',',
        CASE WHEN found_email THEN 'email' END,
        CASE WHEN found_card THEN 'card' END,
        CASE WHEN found_ip THEN 'ip' END,
        CASE WHEN found_phone THEN 'phone' END,
        CASE WHEN found_ssn THEN 'ssn' END,
        CASE WHEN found_iban THEN 'iban' END,
        CASE WHEN found_secret THEN 'secret' END
    ) ELSE '' END AS redacted,
    is_eval
FROM redacted
