-- An order-independent digest of each split's rows, taken before the text is read: a row is named
-- by hashes of everything the snapshot takes from its trace and its action (06_joined.sql
-- row_key), of its prompt and completion (ph, ch: the completion's is the edit's for an edit
-- row), its label and source. Redaction is a function of these and of the SQL that runs it,
-- which snapshot.content_digest adds. Two 64-bit hashes per row (salted apart) are combined by
-- xor and by sum. DuckDB's hash() is stable within a DuckDB version; the version is part of the
-- id's basis, so an upgrade makes a new snapshot, never a wrong match.
WITH
hashed AS (
    SELECT
        split,
        hash(row_key, ph, ch, label, source) AS h1,
        hash('salt', row_key, ph, ch, label, source) AS h2
    FROM final_rows
)
SELECT
    split,
    count(*) AS n,
    bit_xor(h1)::VARCHAR AS x,
    sum(h2 >> 16)::VARCHAR AS s
FROM hashed
GROUP BY split
ORDER BY split
