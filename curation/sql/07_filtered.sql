-- Edits, conflicts and filters, as CTEs of one statement, which DuckDB pipelines where a table
-- per step would be written (and at 10 M spilled) and read back. Counted by counts/07_filtered.sql.
-- * edits: a thumb or rating is a trainable row as it is; an edit becomes two, the user's
--   completion (desirable) and the original completion (undesirable);
-- * conflicts: users disagreeing on one prompt+completion get a verdict per row under the
--   conflict policy; only the disagreeing pairs are kept in `disputed`, so the join back is
--   against a small table;
-- * filters: empty (after trimming) and over-long prompts and completions (checked when the
--   text was read, in 03 and 05; a missing text is empty). A row a conflict dropped keeps its
--   verdict as its reason, so one table counts both steps.
WITH
joined_actions AS NOT MATERIALIZED (SELECT * FROM joined),
-- `usable` and `trainable` are each read more than once: materialized, they are computed once
usable AS MATERIALIZED (
    -- status and on_policy are settled here; dropping them keeps every later table narrower
    SELECT * EXCLUDE (status, on_policy)
    FROM joined_actions
    WHERE status IN ('joined', 'self_contained') AND on_policy
),
expanded AS (
    SELECT * EXCLUDE (edited_hash, edited_empty, edited_too_long, up),
        CASE WHEN is_rating THEN 'rating' ELSE 'thumb' END AS source, up AS label
    FROM usable WHERE NOT is_edit
    UNION ALL BY NAME
    SELECT * EXCLUDE (completion_hash, completion_empty, completion_too_long, up)
        RENAME (
            edited_hash AS completion_hash, edited_empty AS completion_empty,
            edited_too_long AS completion_too_long
        ),
        'edit' AS source, true AS label
    FROM usable WHERE is_edit
    UNION ALL BY NAME
    SELECT * EXCLUDE (edited_hash, edited_empty, edited_too_long, up), 'edit_original' AS source, false AS label
    FROM usable WHERE is_edit
),
trainable AS MATERIALIZED (
    SELECT
        * EXCLUDE (is_edit, is_rating, event_hash),
        -- a stable pseudo-random rank (the same for a given DuckDB version; md5 was 15x slower) for
        -- caps and downsampling: a seeded hash of the event (event_hash is its event_id's hash) and source
        hash($seed, event_hash, source) AS seeded_rank
    FROM expanded
),
disputed AS (
    SELECT prompt_hash, completion_hash, count_if(label) AS up_votes, count_if(NOT label) AS down_votes
    FROM trainable
    GROUP BY prompt_hash, completion_hash
    HAVING up_votes > 0 AND down_votes > 0
),
resolved AS (
    SELECT
        r.*,
        CASE
            WHEN d.prompt_hash IS NULL OR $policy = 'keep' THEN 'keep'
            WHEN $policy = 'drop' THEN 'conflict'
            WHEN d.up_votes = d.down_votes THEN CASE WHEN $tie_policy = 'keep' THEN 'keep' ELSE 'tie' END
            WHEN (d.up_votes > d.down_votes) = r.label THEN 'keep'
            ELSE 'minority'
        END AS verdict
    FROM trainable AS r
    LEFT JOIN disputed AS d ON r.prompt_hash = d.prompt_hash AND r.completion_hash = d.completion_hash
)
SELECT
    * EXCLUDE (verdict, prompt_empty, prompt_too_long, completion_empty, completion_too_long),
    CASE
        WHEN verdict <> 'keep' THEN verdict
        WHEN coalesce(prompt_empty, true) OR coalesce(completion_empty, true) THEN 'empty'
        WHEN coalesce(prompt_too_long, false) OR coalesce(completion_too_long, false) THEN 'too_long'
        ELSE 'ok'
    END AS reason
FROM resolved
