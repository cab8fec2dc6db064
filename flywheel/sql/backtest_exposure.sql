-- What a policy's levels and gates would have let act alone on one day ($outcomes: the day's
-- event_outcomes file), per scenario: $plan holds (scenario, level, threshold) in force that day.
-- acting_alone: events the AI would have acted on without review (autonomous: all; gated: those at
-- or above the threshold). failures_unreviewed: of those, the events humans reviewed in reality and
-- found failing (rejected, escalated, reverted, heavily edited) or that failed themselves (error,
-- timeout, fallback): they would have gone out unreviewed. Events that really acted alone have no
-- human verdict and are not counted as failures.
SELECT p.scenario,
       count(o.event_id) FILTER (WHERE p.level = 'autonomous' OR (p.level = 'gated' AND o.confidence >= p.threshold)) AS acting_alone,
       count(o.event_id) FILTER (WHERE (p.level = 'autonomous' OR (p.level = 'gated' AND o.confidence >= p.threshold))
                                   AND (o.outcome IN ('rejected', 'escalated', 'reverted')
                                        OR (o.outcome = 'edited' AND o.edit_class = 'heavy')
                                        OR o.status IN ('error', 'timeout', 'fallback'))) AS failures_unreviewed,
       count(o.event_id) AS events,
       sum(o.review_seconds_total) / nullif(count(o.review_seconds_total), 0) AS review_seconds_mean
FROM plan p JOIN read_parquet($outcomes) o USING (scenario)
GROUP BY p.scenario
ORDER BY p.scenario
