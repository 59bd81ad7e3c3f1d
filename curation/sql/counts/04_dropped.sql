-- Copies of an event and superseded actions, then the actions aged out by their event date
-- (older than the cutoff, inside the window's date folders).
WITH
dropped_counts AS (
    SELECT
        count(*) FILTER (WHERE reason = 'duplicate') AS duplicates,
        count(*) FILTER (WHERE reason = 'superseded') AS superseded
    FROM dropped
),
aged_out AS (
    SELECT count(*) AS aged_out_by_date
    FROM feedback AS f
    ANTI JOIN dropped AS d ON f.feedback_pos = d.feedback_pos
    WHERE NOT f.recent
)
SELECT
    duplicates,
    $read - duplicates AS after_dedupe,
    superseded,
    after_dedupe - superseded AS after_latest_action,
    aged_out_by_date,
    after_latest_action - aged_out_by_date AS after_age_date
FROM dropped_counts, aged_out
