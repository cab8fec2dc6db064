-- One scenario's events that act alone at a level ($gate: all events when NULL and $all, those at or
-- above the confidence gate otherwise) over the event_outcomes files $files: events, reviewed
-- (audited or reverted), accepted as-is, severe failures and operational failures, for the
-- demotion triggers of `autonomy.rate_trigger`.
SELECT count(*)::BIGINT AS events,
       count(*) FILTER (WHERE outcome IN ('accepted', 'edited', 'rejected', 'escalated', 'reverted'))::BIGINT AS reviewed,
       count(*) FILTER (WHERE outcome = 'accepted')::BIGINT AS accepted,
       count(*) FILTER (WHERE outcome IN ('rejected', 'reverted') OR status = 'error')::BIGINT AS severe_failures,
       count(*) FILTER (WHERE status = 'error')::BIGINT AS errors,
       count(*) FILTER (WHERE status = 'timeout')::BIGINT AS timeouts,
       count(*) FILTER (WHERE status = 'fallback')::BIGINT AS fallbacks
FROM read_parquet($files, union_by_name = true)
WHERE scenario = $scenario AND ($all OR confidence >= $gate)
