-- The events of a calibration window, counted per (scenario, model, confidence, reviewed,
-- accepted, stratum). An event is in the audit stratum when it acted without a review (autonomous,
-- or gated at or above its decision gate), else in the review stratum.
-- Parameters: $files, the window's event-outcome files; $reviewed, the outcomes that mean a human
-- looked at the output.
SELECT scenario, model, confidence, list_contains($reviewed, outcome) AS reviewed, outcome = 'accepted' AS accepted,
       CASE WHEN autonomy_level = 'autonomous' OR (autonomy_level = 'gated' AND confidence >= decision_gate)
            THEN 'audit' ELSE 'review' END AS stratum,
       count(*) AS n
FROM read_parquet($files, union_by_name = true)
GROUP BY ALL
ORDER BY scenario, model, confidence, reviewed, accepted, stratum  -- a fixed order: float sums do not depend on file order
