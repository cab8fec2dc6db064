-- The 10 most frequent substitutions per language pair (scenario): what the post-editors replaced
-- most often, over every day, from the edit-pattern table.
SELECT scenario, before, after, sum(events) AS events
FROM failures.edit_patterns
WHERE kind = 'substitution'
GROUP BY ALL
QUALIFY row_number() OVER (PARTITION BY scenario ORDER BY sum(events) DESC, before, after) <= 10
ORDER BY scenario, events DESC, before, after
