-- An order-independent digest of each split's rows: a 64-bit hash per row (two, salted apart),
-- combined by xor and by sum. The snapshot id derives from it, so the same rows give the same id
-- however they were produced. DuckDB's hash() is stable within a DuckDB version; the version is
-- part of the id's basis (see snapshot.py), so an upgrade makes a new snapshot, never a wrong match.
WITH
hashed AS (
    SELECT
        split,
        hash(prompt, prompt_format, completion, label, trace_id, model_version, event_time, source,
             session_id, user_id, tags, event_id) AS h1,
        hash('salt', prompt, prompt_format, completion, label, trace_id, model_version, event_time, source,
             session_id, user_id, tags, event_id) AS h2
    FROM out
)
SELECT
    split,
    count(*) AS n,
    bit_xor(h1)::VARCHAR AS x,
    sum(h2 >> 16)::VARCHAR AS s
FROM hashed
GROUP BY split
ORDER BY split
