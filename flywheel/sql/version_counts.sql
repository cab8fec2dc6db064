-- Per scenario x prompt_version and scenario x model, in strata of the other dimension x day
-- (a prompt version's counts per model and day; a model's per prompt version and day), over
-- $files: reviewed and accepted counts. first_seen is each version's first day in $history, so the
-- newest version is the latest rollout.
WITH seen AS (
    SELECT scenario, 'prompt_version' AS dimension, prompt_version AS version, min(event_date) AS first_seen
    FROM read_parquet($history, union_by_name = true) GROUP BY ALL
    UNION ALL
    SELECT scenario, 'model', model, min(event_date)
    FROM read_parquet($history, union_by_name = true) GROUP BY ALL
), cur AS (
    SELECT scenario, 'prompt_version' AS dimension, prompt_version AS version, model AS other, event_date,
           sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted, sum(events)::BIGINT AS events
    FROM read_parquet($files, union_by_name = true) GROUP BY ALL
    UNION ALL
    SELECT scenario, 'model', model, prompt_version, event_date,
           sum(reviewed)::BIGINT, sum(accepted)::BIGINT, sum(events)::BIGINT
    FROM read_parquet($files, union_by_name = true) GROUP BY ALL
)
SELECT cur.*, seen.first_seen
FROM cur JOIN seen USING (scenario, dimension, version)
ORDER BY scenario, dimension, version, other, event_date
