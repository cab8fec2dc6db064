-- Counts and figures per scenario x model x prompt_version x autonomy_level for one day of
-- resolved outcomes ($outcomes); rates and Wilson intervals are added in Python (rates.py).
SELECT
    event_date, scenario, model, prompt_version, autonomy_level,
    count(*) AS events,
    count(*) FILTER (WHERE n_interventions > 0) AS reviewed,
    count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
    count(*) FILTER (WHERE outcome = 'edited') AS edited,
    count(*) FILTER (WHERE outcome = 'rejected') AS rejected,
    count(*) FILTER (WHERE outcome = 'escalated') AS escalated,
    count(*) FILTER (WHERE outcome = 'reverted') AS reverted,
    count(*) FILTER (WHERE outcome = 'acted_alone') AS acted_alone,
    count(*) FILTER (WHERE outcome = 'awaiting_review') AS awaiting_review,
    count(*) FILTER (WHERE accepted_with_changes) AS accepted_with_changes,
    count(*) FILTER (WHERE edit_class = 'light') AS edits_light,
    count(*) FILTER (WHERE edit_class = 'heavy') AS edits_heavy,
    count(*) FILTER (WHERE status = 'error') AS errors,
    count(*) FILTER (WHERE status = 'timeout') AS timeouts,
    count(*) FILTER (WHERE status = 'fallback') AS fallbacks,
    count(*) FILTER (WHERE outcome IN ('rejected', 'reverted') OR status = 'error') AS severe_failures,
    avg(edit_distance_chars) FILTER (WHERE outcome = 'edited') AS edit_magnitude_mean,
    quantile_cont(edit_distance_chars, 0.5) FILTER (WHERE outcome = 'edited') AS edit_magnitude_p50,
    quantile_cont(edit_distance_chars, 0.9) FILTER (WHERE outcome = 'edited') AS edit_magnitude_p90,
    avg(edit_distance_chars) FILTER (WHERE autonomy_level = 'shadow') AS shadow_distance_mean,
    quantile_cont(review_seconds_total, 0.5) AS review_seconds_p50,
    quantile_cont(review_seconds_total, 0.9) AS review_seconds_p90,
    sum(review_seconds_total) AS review_seconds_sum,
    quantile_cont(latency_ms, 0.5) AS latency_ms_p50,
    quantile_cont(latency_ms, 0.95) AS latency_ms_p95,
    sum(input_tokens) AS input_tokens_sum,
    sum(output_tokens) AS output_tokens_sum,
    avg(input_tokens + output_tokens) AS tokens_per_event_mean,
    avg(confidence) AS confidence_mean
FROM read_parquet($outcomes)
GROUP BY ALL
ORDER BY scenario, model, prompt_version, autonomy_level
