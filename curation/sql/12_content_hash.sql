-- An order-independent digest of each split's rows (md5 per row, combined by xor and sum):
-- the snapshot id derives from it, so the same rows give the same id however they were produced.
WITH
rows_text AS (
    SELECT
        split,
        concat_ws(chr(31), prompt, prompt_format, completion, label::VARCHAR, trace_id, model_version,
                  strftime(event_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f'), source,
                  coalesce(session_id, ''), coalesce(user_id, ''), tags, event_id) AS line
    FROM out
)
SELECT
    split,
    count(*) AS n,
    bit_xor(md5_number_lower(line))::VARCHAR AS x,
    sum(md5_number_upper(line) >> 16)::VARCHAR AS s
FROM rows_text
GROUP BY split
ORDER BY split
