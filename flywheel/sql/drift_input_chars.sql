-- Per scenario and window (is_current: on or after $cs) and input length: the events with a
-- known input length, from the window's event-outcome files ($files).
SELECT scenario, event_date >= CAST($cs AS DATE) AS is_current, input_chars, count(*) AS n
FROM read_parquet($files, union_by_name = true)
WHERE input_chars IS NOT NULL
GROUP BY ALL ORDER BY ALL
