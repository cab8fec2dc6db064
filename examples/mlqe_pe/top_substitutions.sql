-- "Which words do reviewers always change?": the 10 most frequent substitutions per scenario (here
-- a language pair) over the last 7 days, with their share of the edited events; the query of
-- question 15 in docs/cookbook.md, run on failures.edit_patterns.
WITH last AS (SELECT max(event_date) AS d FROM failures.edit_patterns),
week AS (SELECT p.* FROM failures.edit_patterns p, last WHERE p.event_date > last.d - 7),
edited AS (
    SELECT scenario, sum(edited_events) AS week_edited
    FROM (SELECT DISTINCT event_date, scenario, edited_events FROM week) GROUP BY ALL
)
SELECT scenario, before, after, sum(events) AS events,
       round(sum(events) / any_value(week_edited), 3) AS share_of_edited
FROM week JOIN edited USING (scenario)
WHERE kind = 'substitution'
GROUP BY scenario, before, after
QUALIFY row_number() OVER (PARTITION BY scenario ORDER BY sum(events) DESC, before, after) <= 10
ORDER BY scenario, events DESC, before, after
