-- Users disagreeing on one prompt+completion: the verdict per row under the conflict policy.
-- Only the disagreeing pairs are kept in `disputed`, so the join back is against a small table.
WITH
disputed AS (
    SELECT ph, ch, count_if(label) AS n_up, count_if(NOT label) AS n_down
    FROM rows
    GROUP BY ph, ch
    HAVING n_up > 0 AND n_down > 0
)
SELECT
    r.*,
    CASE
        WHEN d.ph IS NULL OR $policy = 'keep' THEN 'keep'
        WHEN $policy = 'drop' THEN 'conflict'
        WHEN d.n_up = d.n_down THEN CASE WHEN $tie_policy = 'keep' THEN 'keep' ELSE 'tie' END
        WHEN (d.n_up > d.n_down) = r.label THEN 'keep'
        ELSE 'minority'
    END AS verdict
FROM rows AS r
LEFT JOIN disputed AS d ON r.ph = d.ph AND r.ch = d.ch
