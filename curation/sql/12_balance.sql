-- Downsampling (balance = downsample): keep the first $keep_up desirable and $keep_down undesirable
-- train rows by the seeded rank; eval keeps its natural class mix.
WITH
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY split, label ORDER BY rk, fb_pos, source) AS class_rank
    FROM split_rows
)
SELECT * EXCLUDE (class_rank)
FROM ranked
WHERE split = 'eval' OR class_rank <= CASE WHEN label THEN $keep_up ELSE $keep_down END
