-- What became of each recent action at the join (06_joined.sql's status), then the rows left out
-- because the model version that served them is no longer on-policy, and the edits among the rest.
SELECT
    count(*) FILTER (WHERE status = 'joined') AS joined,
    count(*) FILTER (WHERE status = 'self_contained') AS self_contained,
    count(*) FILTER (WHERE status = 'pending') AS pending,
    count(*) FILTER (WHERE status = 'orphaned') AS orphaned,
    count(*) FILTER (WHERE status = 'invalid') AS invalid,
    count(*) FILTER (WHERE status = 'untrained_rating') AS untrained_rating,
    count(*) FILTER (WHERE status IN ('joined', 'self_contained')) AS after_join,
    count(*) FILTER (WHERE status IN ('joined', 'self_contained') AND on_policy) AS after_age_version,
    after_join - after_age_version AS aged_out_by_version,
    count(*) FILTER (WHERE status IN ('joined', 'self_contained') AND on_policy AND is_edit) AS edits
FROM joined
