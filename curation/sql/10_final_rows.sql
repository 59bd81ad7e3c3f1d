-- Downsampling (balance = downsample): keep the first $keep_up desirable and $keep_down undesirable
-- train rows by the seeded rank; eval keeps its natural class mix. With balance = weights every row
-- stays and this step does not run (pipeline: split_rows becomes final_rows as it is). Counted by
-- counts/10_final_rows.sql.
WITH
assigned AS NOT MATERIALIZED (SELECT * FROM split_rows),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY split, label ORDER BY seeded_rank, feedback_pos, source) AS class_rank
    FROM assigned
)
SELECT * EXCLUDE (class_rank)
FROM ranked
WHERE split = 'eval' OR class_rank <= CASE WHEN label THEN $keep_up ELSE $keep_down END
