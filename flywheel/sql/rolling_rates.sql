-- 7- and 28-day windows per scenario ending at $day, summed from the daily marts ($daily: the
-- files of the 28 days up to $day), never from raw events. Rates are added in Python.
WITH daily AS (
    SELECT * FROM read_parquet($daily, union_by_name = true)
), windows AS (
    SELECT unnest([7, 28]) AS window_days
)
SELECT
    CAST($day AS DATE) AS window_end,
    w.window_days,
    CAST($day AS DATE) - (w.window_days - 1) AS window_start,
    d.scenario,
    count(DISTINCT d.event_date) AS days_with_data,
    sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted, sum(edited)::BIGINT AS edited,
    sum(rejected)::BIGINT AS rejected, sum(escalated)::BIGINT AS escalated, sum(reverted)::BIGINT AS reverted,
    sum(acted_alone)::BIGINT AS acted_alone, sum(awaiting_review)::BIGINT AS awaiting_review,
    sum(errors)::BIGINT AS errors, sum(timeouts)::BIGINT AS timeouts, sum(fallbacks)::BIGINT AS fallbacks,
    sum(severe_failures)::BIGINT AS severe_failures
FROM daily d, windows w
WHERE d.event_date > CAST($day AS DATE) - w.window_days AND d.event_date <= CAST($day AS DATE)
GROUP BY ALL
ORDER BY d.scenario, w.window_days
