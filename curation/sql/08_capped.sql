-- At most $max_per_prompt rows per prompt, then at most $max_per_user rows per user
-- (0 = no cap), chosen by the seeded rank so the choice is stable. Groups are counted
-- first and only the rows of groups over a cap are sorted. `user_hash` is the user (a hash of the
-- key: two users would share a cap only if their 64-bit hashes collided). Counted by
-- counts/08_capped.sql.
WITH
filtered_rows AS NOT MATERIALIZED (SELECT * FROM filtered),
-- read three times: materialized, the kept rows are picked out once
ok AS MATERIALIZED (
    SELECT * EXCLUDE (reason) FROM filtered_rows WHERE reason = 'ok'
),
big_prompts AS (
    SELECT prompt_hash FROM ok GROUP BY prompt_hash HAVING $max_per_prompt > 0 AND count(*) > $max_per_prompt
),
prompt_ranked AS (
    SELECT
        o.*,
        row_number() OVER (PARTITION BY o.prompt_hash ORDER BY o.seeded_rank, o.feedback_pos, o.source) AS prompt_rank
    FROM ok AS o
    SEMI JOIN big_prompts AS b ON o.prompt_hash = b.prompt_hash
),
prompt_capped AS (
    SELECT o.* FROM ok AS o ANTI JOIN big_prompts AS b ON o.prompt_hash = b.prompt_hash
    UNION ALL BY NAME
    SELECT * EXCLUDE (prompt_rank) FROM prompt_ranked WHERE prompt_rank <= $max_per_prompt
),
big_users AS (
    SELECT user_hash FROM prompt_capped GROUP BY user_hash HAVING $max_per_user > 0 AND count(*) > $max_per_user
),
user_ranked AS (
    SELECT
        p.*,
        row_number() OVER (PARTITION BY p.user_hash ORDER BY p.seeded_rank, p.feedback_pos, p.source) AS user_rank
    FROM prompt_capped AS p
    SEMI JOIN big_users AS b ON p.user_hash = b.user_hash
)
SELECT p.*, 'ok' AS reason
FROM prompt_capped AS p
ANTI JOIN big_users AS b ON p.user_hash = b.user_hash
UNION ALL BY NAME
SELECT * EXCLUDE (user_rank), CASE WHEN user_rank > $max_per_user THEN 'cap_user' ELSE 'ok' END AS reason
FROM user_ranked
