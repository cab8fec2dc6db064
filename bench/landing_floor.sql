-- The engine floor over the landing files: per-scenario outcome counts of one day straight from the
-- files the generator writes (events JSONL(.gz)/CSV/Parquet, interventions CSV/JSONL(.gz)/Parquet), in
-- one plain DuckDB query: no staging, no quarantine reasons, no stored partitions, nothing written.
-- The two placeholders below are filled by bench/child.py with one reader call per file (UNION ALL
-- BY NAME), every field read as text (decision_path as JSON), malformed lines skipped by the reader.
-- Minimal validity only: an event needs an id and a scenario, a confidence that is a number (else
-- null); exact and conflicting duplicates count once (any copy); an intervention needs its ids and a
-- timestamp. Same outcome rules as engine_floor.sql / flywheel/sql/event_outcomes.sql.
WITH ev_raw AS (
    {events}
), iv_raw AS (
    {interventions}
), iv AS (
    SELECT event_id,
           arg_max({'action': action, 'final_text': final_text},
                   {'t': t,
                    'sev': CASE action WHEN 'reverted' THEN 5 WHEN 'rejected' THEN 4 WHEN 'escalated' THEN 3
                                       WHEN 'edited' THEN 2 ELSE 1 END,
                    'id': intervention_id}) AS last
    FROM (SELECT intervention_id, event_id, action, final_text, TRY_CAST(occurred_at AS TIMESTAMPTZ) AS t
          FROM iv_raw
          WHERE intervention_id IS NOT NULL AND event_id IS NOT NULL
            AND action IN ('accepted', 'edited', 'rejected', 'escalated', 'reverted'))
    WHERE t IS NOT NULL
    GROUP BY event_id
), ev AS (
    SELECT event_id, any_value(scenario) AS scenario, any_value(autonomy_level) AS autonomy_level,
           any_value(TRY_CAST(confidence AS DOUBLE)) AS confidence, any_value(output_text) AS output_text,
           CAST(any_value(decision_path) AS VARCHAR) AS dp
    FROM ev_raw
    WHERE event_id IS NOT NULL AND scenario IS NOT NULL AND scenario <> ''
    GROUP BY event_id
), ev_route AS (
    SELECT *,
           CASE WHEN json_valid(dp) AND json_type(dp) = 'OBJECT' THEN dp ->> 'route'
                WHEN json_valid(dp) AND json_type(dp) = 'VARCHAR' THEN dp ->> '$'
                WHEN NOT json_valid(dp) THEN dp END AS route,
           CASE WHEN json_valid(dp) AND json_type(dp) = 'OBJECT' THEN TRY_CAST(dp ->> 'gate' AS DOUBLE) END AS gate
    FROM ev
)
SELECT e.scenario,
       CASE WHEN iv.last.action IS NOT NULL THEN
                CASE WHEN iv.last.action = 'accepted' AND iv.last.final_text IS NOT NULL AND iv.last.final_text <> ''
                          AND iv.last.final_text IS DISTINCT FROM e.output_text THEN 'edited' ELSE iv.last.action END
            WHEN e.autonomy_level IN ('gated', 'autonomous') AND (
                 CASE WHEN e.route IS NOT NULL THEN starts_with(lower(e.route), 'auto')
                      WHEN e.autonomy_level = 'autonomous' THEN true
                      ELSE coalesce(e.confidence >= e.gate, false) END) THEN 'acted_alone'
            ELSE 'awaiting_review' END AS outcome,
       count(*) AS n
FROM ev_route e LEFT JOIN iv USING (event_id)
GROUP BY ALL
ORDER BY ALL
