-- Share of desirable judgements of served completions per model version (curated rows).
SELECT
    coalesce(model_version, 'unknown') AS model_version,
    avg(label::INTEGER) AS desirable_share,
    count(*) AS rows
FROM out
WHERE source <> 'edit'
GROUP BY ALL
ORDER BY model_version
