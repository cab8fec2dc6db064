-- Runs of failures per scenario and how long until the next success. $outcomes holds the day
-- before (context: is a run already going?), the day ($day) and the day after (lookahead).
-- A failure is status error or timeout, or outcome reverted; a success is status ok and not
-- reverted; other events (fallbacks, ...) neither start nor end a run.
WITH seq AS (
    SELECT scenario, occurred_at, event_date,
           (status IN ('error', 'timeout') OR outcome = 'reverted') AS failed
    FROM read_parquet($outcomes, union_by_name = true)
    WHERE status IN ('error', 'timeout') OR outcome = 'reverted' OR status = 'ok'
), marked AS (
    SELECT *,
        failed AND NOT coalesce(lag(failed) OVER w, false) AS run_start,
        min(CASE WHEN NOT failed THEN occurred_at END) OVER (
            PARTITION BY scenario ORDER BY occurred_at ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
        ) AS next_success_at
    FROM seq
    WINDOW w AS (PARTITION BY scenario ORDER BY occurred_at)
), runs AS (
    SELECT scenario, occurred_at AS run_started_at,
           epoch(next_success_at) - epoch(occurred_at) AS recovery_seconds
    FROM marked
    WHERE run_start AND event_date = CAST($day AS DATE)
)
SELECT CAST($day AS DATE) AS event_date, scenario,
       count(*) AS failure_runs,
       count(recovery_seconds) AS recovered_runs,
       count(*) - count(recovery_seconds) AS open_runs,
       avg(recovery_seconds) AS recovery_seconds_mean,
       max(recovery_seconds) AS recovery_seconds_max
FROM runs
GROUP BY ALL
ORDER BY scenario
