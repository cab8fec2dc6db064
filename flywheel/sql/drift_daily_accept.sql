-- Daily accepted-as-is counts per scenario over the current window, for CUSUM.
SELECT scenario, event_date, sum(accepted)::BIGINT AS accepted, sum(reviewed)::BIGINT AS reviewed
FROM read_parquet($files, union_by_name = true)
WHERE event_date >= CAST($current_start AS DATE)
GROUP BY ALL
ORDER BY scenario, event_date
