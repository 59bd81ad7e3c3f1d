-- Ratings by what curation makes of them: only desirable and undesirable ones are trained on.
SELECT
    count(*) FILTER (WHERE rating_class = 'desirable') AS ratings_desirable,
    count(*) FILTER (WHERE rating_class = 'undesirable') AS ratings_undesirable,
    count(*) FILTER (WHERE rating_class = 'between') AS ratings_between,
    count(*) FILTER (WHERE rating_class = 'unmapped') AS ratings_unmapped
FROM feedback
