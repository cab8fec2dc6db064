-- Per scenario x failure cluster on day $day (see flywheel/failures/growth.py).
-- $today: the day's failures/assignments file; $baseline: assignments files of the baseline window
-- [$base_start, $day); $clusters: the day's failures/clusters file (labels, birth).
WITH today AS (
    SELECT scenario, cluster_id, count(*) AS events
    FROM read_parquet($today) WHERE cluster_id IS NOT NULL GROUP BY ALL
), today_total AS (
    SELECT scenario, count(*) AS failures FROM read_parquet($today) GROUP BY ALL
), base_rows AS (
    SELECT * FROM read_parquet($baseline) WHERE event_date >= $base_start AND event_date < $day
), base AS (
    SELECT scenario, cluster_id, count(*) AS events FROM base_rows WHERE cluster_id IS NOT NULL GROUP BY ALL
), base_total AS (
    SELECT scenario, count(*) AS failures, count(DISTINCT event_date) AS days FROM base_rows GROUP BY ALL
), pairs AS (
    SELECT scenario, cluster_id FROM today
    UNION
    SELECT scenario, cluster_id FROM base
), joined AS (
    SELECT
        p.scenario, p.cluster_id, c.label, c.born_date,
        coalesce(t.events, 0) AS events,
        coalesce(tt.failures, 0) AS scenario_failures,
        coalesce(b.events, 0) AS baseline_events,
        coalesce(bt.failures, 0) AS baseline_failures,
        coalesce(bt.days, 0) AS baseline_days
    FROM pairs p
    LEFT JOIN today t USING (scenario, cluster_id)
    LEFT JOIN today_total tt USING (scenario)
    LEFT JOIN base b USING (scenario, cluster_id)
    LEFT JOIN base_total bt USING (scenario)
    LEFT JOIN read_parquet($clusters) c USING (cluster_id)
), shares AS (
    SELECT *,
        CASE WHEN scenario_failures > 0 THEN events / scenario_failures END AS share,
        CASE WHEN baseline_failures > 0 THEN baseline_events / baseline_failures END AS baseline_share
    FROM joined
)
SELECT
    CAST($day AS DATE) AS event_date, scenario, cluster_id, label,
    events, scenario_failures, share,
    baseline_events, baseline_failures, baseline_days, baseline_share,
    CASE WHEN baseline_share > 0 THEN share / baseline_share END AS growth_ratio,
    born_date,
    coalesce(born_date > CAST($day AS DATE) - CAST($new_days AS INTEGER), false) AS is_new,
    (events >= $min_events AND baseline_failures > 0
        AND CASE WHEN baseline_share = 0 THEN true ELSE share / baseline_share >= $growth_factor END) AS is_growing
FROM shares
ORDER BY scenario, cluster_id
