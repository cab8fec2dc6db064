-- Records quarantined while building a partition: conflicting duplicates, and interventions
-- stamped before their event; each with its full staged row (joined back by row id) as `raw`.
-- Slots: `rid`, `staged`'s row id (as in rank_duplicates); `id`, the id column of the record kind; `raw_columns`, the columns of its contract.
-- Parameter: the record kind.
SELECT ? AS record_kind, source_file, source_line,
    CASE verdict WHEN 'conflict' THEN 'conflicting_duplicate' ELSE 'intervention_before_event' END AS reason_code,
    CASE verdict
        WHEN 'conflict' THEN format('{id} {} was first stored from {} line {} with different content',
                                    "{id}", first_file, first_line)
        ELSE format('intervention stamped {} is before its event at {}',
                    strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%fZ'), strftime(event_occurred_at, '%Y-%m-%dT%H:%M:%S.%fZ'))
    END AS reason,
    CAST(to_json(struct_pack({raw_columns})) AS VARCHAR) AS raw
FROM (
    SELECT a.*, r.first_file, r.first_line, r.verdict
    FROM ranked r JOIN staged a ON a.{rid} = r._rid
    WHERE r.verdict IN ('conflict', 'before_event')
)
ORDER BY source_file, source_line;
