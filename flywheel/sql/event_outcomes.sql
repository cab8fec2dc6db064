-- One row per event of the day with its resolved outcome (see flywheel/outcomes/resolve.py).
-- $events and $interventions are the day's stored partition files.
WITH iv AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY event_id
            ORDER BY occurred_at DESC,
                     CASE action WHEN 'reverted' THEN 5 WHEN 'rejected' THEN 4 WHEN 'escalated' THEN 3
                                 WHEN 'edited' THEN 2 ELSE 1 END DESC,
                     intervention_id DESC) AS rn,
        count(*) OVER (PARTITION BY event_id) AS n_interventions,
        sum(review_seconds) OVER (PARTITION BY event_id) AS review_seconds_total
    FROM read_parquet($interventions)
), ev AS (
    SELECT *,
        CASE WHEN json_valid(decision_path) AND json_type(decision_path) = 'OBJECT'
             THEN decision_path ->> 'route'
             WHEN json_valid(decision_path) AND json_type(decision_path) = 'VARCHAR'
             THEN decision_path ->> '$' END AS route_text,
        CASE WHEN json_valid(decision_path) AND json_type(decision_path) = 'OBJECT'
             THEN TRY_CAST(decision_path ->> 'gate' AS DOUBLE) END AS gate
    FROM read_parquet($events)
)
SELECT
    e.event_id, e.event_date, e.occurred_at, e.scenario, e.model, e.prompt_version, e.autonomy_level,
    e.status, e.confidence, e.latency_ms, e.input_tokens, e.output_tokens,
    length(e.input_text) AS input_chars,
    e.gate AS decision_gate,
    coalesce(iv.n_interventions, 0) AS n_interventions,
    iv.intervention_id AS final_intervention_id,
    iv.action AS final_action,
    iv.occurred_at AS final_action_at,
    iv.reason_code, iv.comment,
    iv.review_seconds_total,
    CASE
        WHEN iv.action IS NOT NULL THEN
            CASE WHEN iv.action = 'accepted' AND iv.final_text IS NOT NULL
                      AND iv.final_text IS DISTINCT FROM e.output_text THEN 'edited'
                 ELSE iv.action END
        WHEN e.autonomy_level IN ('gated', 'autonomous') AND (
                CASE WHEN e.route_text IS NOT NULL THEN starts_with(lower(e.route_text), 'auto')
                     WHEN e.autonomy_level = 'autonomous' THEN true
                     ELSE coalesce(e.confidence >= e.gate, false) END)
            THEN 'acted_alone'
        ELSE 'awaiting_review'
    END AS outcome,
    (iv.action = 'accepted' AND iv.final_text IS NOT NULL AND iv.final_text IS DISTINCT FROM e.output_text)
        AS accepted_with_changes,
    -- the texts an edit distance is measured on (edited events, and shadow events accepted as-is), only
    -- where they differ: same_text is true where both are there and equal (distance 0), false where
    -- they differ, null where nothing is measured
    CASE WHEN (outcome = 'edited' OR (e.autonomy_level = 'shadow' AND outcome = 'accepted'))
              AND e.output_text IS NOT NULL AND iv.action IN ('accepted', 'edited')
         THEN coalesce(iv.final_text, e.output_text) = e.output_text END AS same_text,
    CASE WHEN NOT same_text THEN e.output_text END AS output_text,
    CASE WHEN NOT same_text THEN coalesce(iv.final_text, e.output_text) END AS shipped_text
FROM ev e
LEFT JOIN iv ON iv.event_id = e.event_id AND iv.rn = 1
ORDER BY e.occurred_at, e.event_id
