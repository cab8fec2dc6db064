-- Per scenario over the days of daily_rates in $files (the current window, or the days since a
-- demotion): events, reviewed, accepted, severe and operational failures, the level seen most in
-- the logs, mean review seconds, and mean daily volume and actions taken alone.
SELECT scenario, sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted,
       sum(severe_failures)::BIGINT AS severe_failures, sum(errors)::BIGINT AS errors,
       sum(timeouts)::BIGINT AS timeouts, sum(fallbacks)::BIGINT AS fallbacks,
       sum(acted_alone)::BIGINT AS acted_alone,
       arg_max(autonomy_level, events) AS logged_level,
       sum(review_seconds_sum)::DOUBLE / nullif(sum(reviewed)::BIGINT, 0) AS review_seconds_mean,
       sum(events)::BIGINT / count(DISTINCT event_date) AS events_per_day,
       sum(acted_alone)::BIGINT / count(DISTINCT event_date) AS acted_alone_per_day
FROM (SELECT scenario, autonomy_level, event_date, sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed,
             sum(accepted)::BIGINT AS accepted, sum(severe_failures)::BIGINT AS severe_failures,
             sum(errors)::BIGINT AS errors, sum(timeouts)::BIGINT AS timeouts, sum(fallbacks)::BIGINT AS fallbacks,
             sum(acted_alone)::BIGINT AS acted_alone, sum(review_seconds_sum)::DOUBLE AS review_seconds_sum
      FROM read_parquet($files, union_by_name = true) GROUP BY ALL)
GROUP BY scenario ORDER BY scenario
