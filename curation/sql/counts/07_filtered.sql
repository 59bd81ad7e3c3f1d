-- The trainable rows (an edit is two), those a conflict dropped, and those the filters dropped:
-- 07_filtered.sql keeps a conflict's verdict as the row's reason.
SELECT
    count(*) AS after_edits,
    count(*) FILTER (WHERE reason = 'minority') AS conflict_minority,
    count(*) FILTER (WHERE reason = 'tie') AS conflict_ties,
    count(*) FILTER (WHERE reason = 'conflict') AS conflict_dropped,
    after_edits - conflict_minority - conflict_ties - conflict_dropped AS after_conflicts,
    count(*) FILTER (WHERE reason = 'empty') AS dropped_empty,
    count(*) FILTER (WHERE reason = 'too_long') AS dropped_too_long,
    count(*) FILTER (WHERE reason = 'ok') AS after_filters
FROM filtered
