-- Per tool and scenario over the current window: calls, errors, denials, and how the events that
-- used the tool turned out. $events / $outcomes: the window's stored partitions.
WITH calls AS (
    SELECT e.event_id, e.scenario, unnest(e.tool_calls) AS call
    FROM read_parquet($events, union_by_name = true) e
    WHERE e.tool_calls IS NOT NULL
), per_event AS (
    SELECT c.scenario, c.call.name AS tool, c.event_id,
           count(*) AS calls,
           count(*) FILTER (WHERE c.call.status = 'error') AS errors,
           count(*) FILTER (WHERE c.call.status = 'denied') AS denied
    FROM calls c GROUP BY ALL
)
SELECT p.tool, p.scenario,
       sum(p.calls)::BIGINT AS calls, sum(p.errors)::BIGINT AS errors, sum(p.denied)::BIGINT AS denied,
       count(*) AS events_using,
       count(*) FILTER (WHERE o.outcome IN ('rejected', 'reverted') OR o.status = 'error') AS severe_events,
       count(*) FILTER (WHERE o.outcome IN ('accepted', 'edited', 'rejected', 'escalated', 'reverted')) AS reviewed_events
FROM per_event p
JOIN read_parquet($outcomes, union_by_name = true) o USING (event_id)
GROUP BY GROUPING SETS ((p.tool), (p.tool, p.scenario))
ORDER BY p.tool, p.scenario NULLS FIRST
