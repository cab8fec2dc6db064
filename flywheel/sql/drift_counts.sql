-- Outcome counts per window (current / baseline) for each scenario, scenario x model and
-- scenario x prompt_version ('*' = all), from the daily marts of both windows ($files).
SELECT
    CASE WHEN event_date >= CAST($current_start AS DATE) THEN 'current' ELSE 'baseline' END AS window,
    scenario,
    coalesce(model, '*') AS model,
    coalesce(prompt_version, '*') AS prompt_version,
    count(DISTINCT event_date) AS days,
    sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted,
    sum(severe_failures)::BIGINT AS severe_failures
FROM read_parquet($files, union_by_name = true)
GROUP BY GROUPING SETS ((1, scenario), (1, scenario, model), (1, scenario, prompt_version))
