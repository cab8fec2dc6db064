-- The events of a day that the failure tables read, one row each, sorted by event_id: every
-- failing event (`failing`: its outcome is one of $outcomes_failing, or edited with an edit_class
-- of $heavy, or its status one of $statuses_failing) and every event whose deciding intervention
-- shipped a final text different from the draft (`edited`; a null draft is ""), with what
-- describes its failure and its edit (flywheel/failures/documents.py, patterns.py).
-- $outcomes, $events, $interventions: the day's stored partition files.
SELECT * FROM (
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
            lambda t: t.name || ' ' || t.status) AS failed_tools,
        coalesce(list_contains($outcomes_failing, o.outcome)
                 OR (o.outcome = 'edited' AND o.edit_class = $heavy)
                 OR list_contains($statuses_failing, o.status), false) AS failing,
        coalesce(i.final_text IS NOT NULL AND i.final_text IS DISTINCT FROM coalesce(e.output_text, ''),
                 false) AS edited
    FROM read_parquet($outcomes) o
    JOIN read_parquet($events) e USING (event_id)
    LEFT JOIN read_parquet($interventions) i ON i.intervention_id = o.final_intervention_id
)
WHERE failing OR edited
ORDER BY event_id
