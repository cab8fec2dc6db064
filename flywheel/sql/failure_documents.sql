-- One row per failing event of the day, with what describes its failure (see flywheel/failures/documents.py).
-- $outcomes, $events, $interventions: the day's stored partition files.
-- $outcomes_failing: outcomes that count as failures; $statuses_failing: statuses that do;
-- an edited outcome counts when its edit_class is $heavy.
SELECT
    o.event_id, o.event_date, o.occurred_at, o.scenario, o.model, o.prompt_version,
    o.status, o.outcome, o.edit_class, o.final_intervention_id, o.reason_code, o.comment,
    e.input_text, e.output_text,
    i.final_text,
    CASE WHEN json_valid(e.attributes) AND json_type(e.attributes) = 'OBJECT'
         THEN e.attributes ->> '$."error.type"' END AS error_type,
    CASE WHEN json_valid(e.attributes) AND json_type(e.attributes) = 'OBJECT'
         THEN e.attributes ->> '$."error.message"' END AS error_message,
    list_transform(
        list_filter(coalesce(e.tool_calls, []), lambda t: t.status IN ('error', 'denied')),
        lambda t: t.name || ' ' || t.status) AS failed_tools
FROM read_parquet($outcomes) o
JOIN read_parquet($events) e USING (event_id)
LEFT JOIN read_parquet($interventions) i ON i.intervention_id = o.final_intervention_id
WHERE list_contains($outcomes_failing, o.outcome)
   OR (o.outcome = 'edited' AND o.edit_class = $heavy)
   OR list_contains($statuses_failing, o.status)
ORDER BY o.event_id
