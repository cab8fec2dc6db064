-- The engine floor: per-scenario outcome counts of one day, straight from the stored Parquet
-- partitions of events ($events) and interventions ($interventions), in one plain DuckDB query.
-- Same outcome rules as flywheel/sql/event_outcomes.sql (latest intervention wins, ties by
-- severity then intervention_id; accepted with changed text = edited; unreviewed gated/autonomous
-- events that acted by themselves = acted_alone), without edit distances or writing anything.
-- The harness checks that its counts equal those of outcomes/event_outcomes for the day.
WITH iv AS (
    SELECT event_id,
           arg_max({'action': action, 'final_text': final_text},
                   {'t': occurred_at,
                    'sev': CASE action WHEN 'reverted' THEN 5 WHEN 'rejected' THEN 4 WHEN 'escalated' THEN 3
                                       WHEN 'edited' THEN 2 ELSE 1 END,
                    'id': intervention_id}) AS last
    FROM read_parquet($interventions)
    GROUP BY event_id
), ev AS (
    SELECT event_id, scenario, autonomy_level, confidence, output_text,
           CASE WHEN json_valid(decision_path) AND json_type(decision_path) = 'OBJECT' THEN decision_path ->> 'route'
                WHEN json_valid(decision_path) AND json_type(decision_path) = 'VARCHAR' THEN decision_path ->> '$' END AS route,
           CASE WHEN json_valid(decision_path) AND json_type(decision_path) = 'OBJECT'
                THEN TRY_CAST(decision_path ->> 'gate' AS DOUBLE) END AS gate
    FROM read_parquet($events)
)
SELECT e.scenario,
       CASE WHEN iv.last.action IS NOT NULL THEN
                CASE WHEN iv.last.action = 'accepted' AND iv.last.final_text IS NOT NULL
                          AND iv.last.final_text IS DISTINCT FROM e.output_text THEN 'edited' ELSE iv.last.action END
            WHEN e.autonomy_level IN ('gated', 'autonomous') AND (
                 CASE WHEN e.route IS NOT NULL THEN starts_with(lower(e.route), 'auto')
                      WHEN e.autonomy_level = 'autonomous' THEN true
                      ELSE coalesce(e.confidence >= e.gate, false) END) THEN 'acted_alone'
            ELSE 'awaiting_review' END AS outcome,
       count(*) AS n
FROM ev e LEFT JOIN iv USING (event_id)
GROUP BY ALL
ORDER BY ALL
