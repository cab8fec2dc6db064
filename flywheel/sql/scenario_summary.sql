-- Per scenario over the last $days stored days: volume, outcome shares among reviewed events,
-- failures, and the latest recommended confidence gate (all models).
WITH last AS (SELECT max(event_date) AS d FROM outcomes.daily_rates),
rates AS (
    SELECT scenario,
           string_agg(DISTINCT autonomy_level, '/' ORDER BY autonomy_level) AS levels,
           sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted,
           sum(edited)::BIGINT AS edited, sum(rejected)::BIGINT AS rejected, sum(errors)::BIGINT + sum(timeouts)::BIGINT AS failures
    FROM outcomes.daily_rates, last
    WHERE event_date > last.d - CAST($days AS INTEGER)
    GROUP BY scenario
), gates AS (
    SELECT scenario, gate_threshold, gate_coverage
    FROM outcomes.calibration, last
    WHERE window_end = last.d AND model = '*'
)
SELECT r.*, g.gate_threshold, g.gate_coverage, (SELECT d FROM last) AS last_day
FROM rates r LEFT JOIN gates g USING (scenario)
ORDER BY r.events DESC
