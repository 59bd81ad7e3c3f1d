-- Preference pairs (prompt, chosen, rejected) mined from the snapshot's own rows (view `out`: both
-- split files read back, text already redacted), so a pair never holds a row the snapshot left out.
-- * edit: the user's edited completion (source 'edit') over the original ('edit_original') of the
--   same feedback action (event_id).
-- * thumbs: an up-thumbed and a down-thumbed answer to the same prompt (and prompt_format) from the
--   same model_version, the two actions at most $window_hours apart. Only the first
--   $pairs_per_prompt rows of each label per (prompt, model_version), by a seeded rank, are
--   crossed, so a popular prompt costs at most that squared (0: no cap, every up with every down).
-- Both sides of a pair come from one split (a prompt is only ever on one side); candidates across
-- the split are counted (`across_split`) and dropped. Then at most $pairs_per_prompt pairs per
-- prompt and $pairs_per_user per user (the user of the chosen side: the editor, the up-voter),
-- by a seeded rank. Columns `keep` (bool) and `reason` say which survive and why not.
WITH
snapshot_rows AS NOT MATERIALIZED (SELECT * FROM out),
rows AS (
    SELECT *, hash(prompt, prompt_format) AS prompt_hash FROM snapshot_rows
),
edits AS (
    SELECT
        e.split, e.split AS other_split, e.prompt_hash, e.prompt, e.prompt_format, e.completion AS chosen,
        o.completion AS rejected, 'edit' AS source, e.event_id AS chosen_event_id,
        o.event_id AS rejected_event_id, e.trace_id AS chosen_trace_id, o.trace_id AS rejected_trace_id,
        e.model_version, e.user_id, e.event_time AS chosen_time, o.event_time AS rejected_time
    FROM rows AS e
    JOIN rows AS o ON e.event_id = o.event_id AND o.source = 'edit_original'
    WHERE e.source = 'edit' AND e.completion <> o.completion
),
thumbs AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY prompt_hash, prompt, prompt_format, model_version, label
            ORDER BY hash($seed, event_id), event_id
        ) AS thumb_rank
    FROM rows
    WHERE source = 'thumb'
),
opposite AS (
    SELECT
        u.split, d.split AS other_split, u.prompt_hash, u.prompt, u.prompt_format, u.completion AS chosen,
        d.completion AS rejected, 'thumbs' AS source, u.event_id AS chosen_event_id,
        d.event_id AS rejected_event_id, u.trace_id AS chosen_trace_id, d.trace_id AS rejected_trace_id,
        u.model_version, u.user_id, u.event_time AS chosen_time, d.event_time AS rejected_time
    FROM thumbs AS u
    JOIN thumbs AS d
        ON u.prompt_hash = d.prompt_hash AND u.prompt = d.prompt AND u.prompt_format = d.prompt_format
        AND u.model_version IS NOT DISTINCT FROM d.model_version
    WHERE u.label AND NOT d.label AND u.completion <> d.completion
        AND ($pairs_per_prompt = 0 OR (u.thumb_rank <= $pairs_per_prompt AND d.thumb_rank <= $pairs_per_prompt))
        AND abs(epoch(u.event_time) - epoch(d.event_time)) <= $window_hours * 3600
),
candidates AS (
    SELECT
        *,
        md5(concat_ws('|', source, chosen_event_id, rejected_event_id)) AS pair_id
    FROM (SELECT * FROM edits UNION ALL SELECT * FROM opposite)
),
one_side AS (
    SELECT *, hash($seed, pair_id) AS seeded_rank FROM candidates WHERE split = other_split
),
by_prompt AS (
    SELECT *, row_number() OVER (PARTITION BY prompt_hash, prompt, prompt_format ORDER BY seeded_rank, pair_id) AS prompt_rank
    FROM one_side
),
by_user AS (
    SELECT
        *,
        CASE WHEN prompt_rank <= $pairs_per_prompt OR $pairs_per_prompt = 0
            THEN row_number() OVER (
                PARTITION BY user_id, prompt_rank <= $pairs_per_prompt OR $pairs_per_prompt = 0
                ORDER BY seeded_rank, pair_id
            )
        END AS user_rank
    FROM by_prompt
)
SELECT
    * EXCLUDE (prompt_hash, other_split, seeded_rank, prompt_rank, user_rank),
    CASE
        WHEN user_rank IS NULL THEN 'cap_prompt'
        WHEN $pairs_per_user > 0 AND user_id IS NOT NULL AND user_rank > $pairs_per_user THEN 'cap_user'
        ELSE 'ok'
    END AS reason
FROM by_user
UNION ALL BY NAME
SELECT * EXCLUDE (prompt_hash, other_split), 'across_split' AS reason FROM candidates WHERE split <> other_split
