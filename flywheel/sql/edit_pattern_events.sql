-- One row per event of the day whose final text differs from its draft (see flywheel/failures/patterns.py):
-- the deciding intervention's final_text set and different from the event's output_text (a null draft is "").
-- $outcomes, $events, $interventions: the day's stored partition files.
SELECT
    o.event_id, o.event_date, o.scenario, e.input_text, e.output_text, i.final_text
FROM read_parquet($outcomes) o
JOIN read_parquet($events) e USING (event_id)
JOIN read_parquet($interventions) i ON i.intervention_id = o.final_intervention_id
WHERE i.final_text IS NOT NULL
  AND i.final_text IS DISTINCT FROM coalesce(e.output_text, '')
ORDER BY o.event_id
