-- The snapshot's rows: those balance = downsample left out, and each split's.
SELECT
    count(*) AS after_balance,
    $after_caps - after_balance AS downsampled,
    count(*) FILTER (WHERE split = 'train') AS train,
    count(*) FILTER (WHERE split = 'eval') AS eval
FROM final_rows
