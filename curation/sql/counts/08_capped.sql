-- Rows over the cap per prompt (08_capped.sql leaves them out) and over the cap per user.
SELECT
    $after_filters - count(*) AS capped_per_prompt,
    count(*) FILTER (WHERE reason = 'cap_user') AS capped_per_user,
    count(*) FILTER (WHERE reason = 'ok') AS after_caps
FROM capped
