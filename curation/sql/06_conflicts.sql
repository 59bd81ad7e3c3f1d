-- Users disagreeing on one prompt+completion: the verdict per row under the conflict policy.
WITH
votes AS (
    SELECT
        *,
        count_if(label) OVER pair AS n_up,
        count_if(NOT label) OVER pair AS n_down
    FROM rows
    WINDOW pair AS (PARTITION BY ph, ch)
)
SELECT
    * EXCLUDE (n_up, n_down),
    CASE
        WHEN n_up = 0 OR n_down = 0 OR $policy = 'keep' THEN 'keep'
        WHEN $policy = 'drop' THEN 'conflict'
        WHEN n_up = n_down THEN CASE WHEN $tie_policy = 'keep' THEN 'keep' ELSE 'tie' END
        WHEN (n_up > n_down) = label THEN 'keep'
        ELSE 'minority'
    END AS verdict
FROM votes
