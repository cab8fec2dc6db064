-- Daily counts per scenario over the whole lookback ($files: the daily marts of the baseline and
-- current windows), oldest day first: the series the sequential monitors run over.
SELECT scenario, event_date,
       sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted,
       sum(severe_failures)::BIGINT AS severe_failures
FROM read_parquet($files, union_by_name = true)
GROUP BY ALL
ORDER BY scenario, event_date
