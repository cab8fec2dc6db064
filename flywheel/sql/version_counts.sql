-- Per scenario x prompt_version and scenario x model over the current window ($files): reviewed
-- and accepted counts; first_seen is the first day in the baseline and current windows
-- ($history), so the newest version is the latest rollout.
WITH seen AS (
    SELECT scenario, 'prompt_version' AS dimension, prompt_version AS version, min(event_date) AS first_seen
    FROM read_parquet($history, union_by_name = true) GROUP BY ALL
    UNION ALL
    SELECT scenario, 'model', model, min(event_date)
    FROM read_parquet($history, union_by_name = true) GROUP BY ALL
), cur AS (
    SELECT scenario, 'prompt_version' AS dimension, prompt_version AS version,
           sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted, sum(events)::BIGINT AS events
    FROM read_parquet($files, union_by_name = true) GROUP BY ALL
    UNION ALL
    SELECT scenario, 'model', model, sum(reviewed)::BIGINT, sum(accepted)::BIGINT, sum(events)::BIGINT
    FROM read_parquet($files, union_by_name = true) GROUP BY ALL
)
SELECT cur.*, seen.first_seen
FROM cur JOIN seen USING (scenario, dimension, version)
ORDER BY 1, 2, 3
