-- Valid interventions not yet stored, duplicated or quarantined: their event has not been built.
SELECT intervention_id, event_id, occurred_at, action, source_file, source_line
FROM ({unaccounted_interventions})
