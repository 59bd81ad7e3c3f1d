-- An order-independent digest of each split's rows, taken before the text is read: a row is named
-- by hashes of everything the snapshot takes from its trace and its action (06_joined.sql
-- row_key), of its prompt and completion (prompt_hash, completion_hash: the completion's is the
-- edit's for an edit row), its label and source. Redaction is a function of these and of the SQL that runs it,
-- which snapshot.content_digest adds. Two 64-bit hashes per row (salted apart) are combined by
-- xor and by sum. DuckDB's hash() is stable within a DuckDB version; the version is part of the
-- id's basis, so an upgrade makes a new snapshot, never a wrong match.
WITH
snapshot_rows AS NOT MATERIALIZED (SELECT * FROM final_rows),
hashed AS (
    SELECT
        split,
        hash(row_key, prompt_hash, completion_hash, label, source) AS row_hash,
        hash('salt', row_key, prompt_hash, completion_hash, label, source) AS salted_hash
    FROM snapshot_rows
)
SELECT
    split,
    count(*) AS row_count,
    bit_xor(row_hash)::VARCHAR AS hash_xor,
    sum(salted_hash >> 16)::VARCHAR AS hash_sum
FROM hashed
GROUP BY split
ORDER BY split
