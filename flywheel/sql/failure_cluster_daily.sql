-- Per scenario x failure cluster on day $day: the counts the growth test needs (see flywheel/failures/growth.py).
-- $today: the day's failures/assignments file; $baseline: assignments files of the baseline window
-- [$base_start, $day); $clusters: the day's failures/clusters file (labels, birth).
-- A cluster's baseline counts only the window's days since its birth (before it, its events could not
-- join it). `dispersion`: the scenario's Pearson chi-square of day x cluster counts over the baseline
-- window per degree of freedom (clusters born after its first night there pooled with the unmatched events).
WITH born AS (
    SELECT cluster_id, label, born_date FROM read_parquet($clusters)
), today AS (
    SELECT scenario, cluster_id, count(*) AS events
    FROM read_parquet($today) WHERE cluster_id IS NOT NULL GROUP BY ALL
), today_total AS (
    SELECT scenario, count(*) AS failures FROM read_parquet($today) GROUP BY ALL
), base_rows AS (
    SELECT scenario, cluster_id, event_date FROM read_parquet($baseline)
    WHERE event_date >= $base_start AND event_date < $day
), base_cells AS (
    SELECT scenario, cluster_id, event_date, count(*) AS events FROM base_rows GROUP BY ALL
), base_day AS (
    SELECT scenario, event_date, CAST(sum(events) AS BIGINT) AS failures FROM base_cells GROUP BY ALL
), pairs AS (
    SELECT scenario, cluster_id FROM today
    UNION
    SELECT scenario, cluster_id FROM base_cells WHERE cluster_id IS NOT NULL
), base AS (  -- per pair: the baseline since the cluster's birth, and the nights it was seen with min_events
    SELECT p.scenario, p.cluster_id,
        CAST(sum(d.failures) FILTER (WHERE d.event_date >= coalesce(b.born_date, $base_start)) AS BIGINT) AS failures,
        count(*) FILTER (WHERE d.event_date >= coalesce(b.born_date, $base_start)) AS days,
        CAST(sum(d.failures) FILTER (WHERE d.event_date < b.born_date) AS BIGINT) AS failures_before_birth
    FROM pairs p
    LEFT JOIN born b USING (cluster_id)
    JOIN base_day d USING (scenario)
    GROUP BY ALL
), base_events AS (
    SELECT c.scenario, c.cluster_id, CAST(sum(c.events) AS BIGINT) AS events,
        count(*) FILTER (WHERE c.events >= $min_events AND c.event_date >= b.born_date) AS nights_seen
    FROM base_cells c LEFT JOIN born b USING (cluster_id)
    WHERE c.cluster_id IS NOT NULL GROUP BY ALL
), first_day AS (
    SELECT scenario, min(event_date) AS first_day FROM base_day GROUP BY ALL
), cat AS (  -- the dispersion's categories: clusters known on the scenario's first baseline night; the rest pooled
    SELECT c.scenario, c.event_date,
        CASE WHEN b.born_date <= f.first_day THEN c.cluster_id ELSE -1 END AS k, sum(c.events) AS x
    FROM base_cells c JOIN first_day f USING (scenario) LEFT JOIN born b USING (cluster_id) GROUP BY ALL
), cat_total AS (
    SELECT scenario, k, sum(x) AS x FROM cat GROUP BY ALL
), scen_total AS (
    SELECT scenario, sum(failures) AS n, count(*) AS days FROM base_day GROUP BY ALL
), chi AS (
    SELECT d.scenario,
        sum(pow(coalesce(c.x, 0) - d.failures * k.x / s.n, 2) / (d.failures * k.x / s.n)
            ORDER BY d.event_date, k.k) AS x2,  -- in a fixed order: a rerun gives the same bits
        (any_value(s.days) - 1) * (count(DISTINCT k.k) - 1) AS df
    FROM base_day d
    JOIN scen_total s USING (scenario)
    JOIN cat_total k USING (scenario)
    LEFT JOIN cat c ON c.scenario = d.scenario AND c.event_date = d.event_date AND c.k = k.k
    GROUP BY ALL
)
SELECT
    CAST($day AS DATE) AS event_date, p.scenario, p.cluster_id, b.label,
    coalesce(t.events, 0) AS events,
    coalesce(tt.failures, 0) AS scenario_failures,
    coalesce(be.events, 0) AS baseline_events,
    coalesce(ba.failures, 0) AS baseline_failures,
    CAST(coalesce(ba.days, 0) AS BIGINT) AS baseline_days,
    b.born_date,
    coalesce(ba.failures_before_birth, 0) AS failures_before_birth,
    coalesce(be.nights_seen, 0) + CASE WHEN coalesce(t.events, 0) >= $min_events THEN 1 ELSE 0 END AS nights_seen,
    CASE WHEN x.df > 0 THEN greatest(1.0, x.x2 / x.df) ELSE 1.0 END AS dispersion
FROM pairs p
LEFT JOIN born b USING (cluster_id)
LEFT JOIN today t USING (scenario, cluster_id)
LEFT JOIN today_total tt USING (scenario)
LEFT JOIN base ba USING (scenario, cluster_id)
LEFT JOIN base_events be USING (scenario, cluster_id)
LEFT JOIN chi x USING (scenario)
ORDER BY p.scenario, p.cluster_id
