-- Per scenario and window (is_current: on or after $cs, the current window's first day) and
-- confidence: the events, the reviewed ones ($reviewed: the outcomes that mean a human looked at
-- the output) and the accepted-as-is ones, from the window's event-outcome files ($files).
SELECT scenario, event_date >= CAST($cs AS DATE) AS is_current, confidence, count(*) AS n,
       count(*) FILTER (WHERE list_contains($reviewed, outcome)) AS n_reviewed,
       count(*) FILTER (WHERE outcome = 'accepted') AS n_accepted
FROM read_parquet($files, union_by_name = true)
GROUP BY ALL ORDER BY ALL
