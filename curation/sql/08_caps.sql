-- At most $max_per_prompt rows per prompt, then at most $max_per_user rows per user
-- (0 = no cap), chosen by the seeded rank so the choice is stable.
WITH
ok AS (
    SELECT * EXCLUDE (reason) FROM filtered WHERE reason = 'ok'
),
per_prompt AS (
    SELECT *, row_number() OVER (PARTITION BY ph ORDER BY rk, event_id, source) AS prompt_rank FROM ok
),
prompt_capped AS (
    SELECT * EXCLUDE (prompt_rank) FROM per_prompt
    WHERE $max_per_prompt = 0 OR prompt_rank <= $max_per_prompt
),
per_user AS (
    SELECT *, row_number() OVER (PARTITION BY user_key ORDER BY rk, event_id, source) AS user_rank
    FROM prompt_capped
)
SELECT
    * EXCLUDE (user_rank),
    CASE WHEN $max_per_user > 0 AND user_rank > $max_per_user THEN 'cap_user' ELSE 'ok' END AS reason
FROM per_user
