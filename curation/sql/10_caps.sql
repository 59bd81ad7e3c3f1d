-- At most $max_per_prompt rows per prompt, then at most $max_per_user rows per user
-- (0 = no cap), chosen by the seeded rank so the choice is stable. Groups are counted
-- first and only the rows of groups over a cap are sorted. `uk` is the user (a hash of the key:
-- two users would share a cap only if their 64-bit hashes collided).
WITH
ok AS (
    SELECT * EXCLUDE (reason) FROM filtered WHERE reason = 'ok'
),
big_prompts AS (
    SELECT ph FROM ok GROUP BY ph HAVING $max_per_prompt > 0 AND count(*) > $max_per_prompt
),
prompt_ranked AS (
    SELECT o.*, row_number() OVER (PARTITION BY o.ph ORDER BY o.rk, o.fb_pos, o.source) AS prompt_rank
    FROM ok AS o
    SEMI JOIN big_prompts AS b ON o.ph = b.ph
),
prompt_capped AS (
    SELECT o.* FROM ok AS o ANTI JOIN big_prompts AS b ON o.ph = b.ph
    UNION ALL BY NAME
    SELECT * EXCLUDE (prompt_rank) FROM prompt_ranked WHERE prompt_rank <= $max_per_prompt
),
big_users AS (
    SELECT uk FROM prompt_capped GROUP BY uk HAVING $max_per_user > 0 AND count(*) > $max_per_user
),
user_ranked AS (
    SELECT p.*, row_number() OVER (PARTITION BY p.uk ORDER BY p.rk, p.fb_pos, p.source) AS user_rank
    FROM prompt_capped AS p
    SEMI JOIN big_users AS b ON p.uk = b.uk
)
SELECT p.*, 'ok' AS reason
FROM prompt_capped AS p
ANTI JOIN big_users AS b ON p.uk = b.uk
UNION ALL BY NAME
SELECT * EXCLUDE (user_rank), CASE WHEN user_rank > $max_per_user THEN 'cap_user' ELSE 'ok' END AS reason
FROM user_ranked
