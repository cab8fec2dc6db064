-- Per landing file, where every record read went. A record is pending when it was read and is
-- valid but its day has not been built (or, for an intervention, its event has not arrived).
WITH m AS (
    SELECT path, "read" AS records_read, quarantined AS quarantined_at_read FROM {manifests}
), stored AS (
    SELECT source_file, count(*) AS n FROM (
        SELECT source_file FROM {events} UNION ALL SELECT source_file FROM {interventions}
    ) GROUP BY 1
), dups AS (
    SELECT source_file, count(*) AS n FROM (
        SELECT source_file FROM {duplicates_events} UNION ALL SELECT source_file FROM {duplicates_interventions}
    ) GROUP BY 1
), later AS (
    SELECT source_file, count(*) AS n FROM (
        SELECT source_file FROM {quarantine_events} UNION ALL SELECT source_file FROM {quarantine_interventions}
    ) GROUP BY 1
), pending AS (
    SELECT source_file, count(*) AS n FROM (
        SELECT source_file FROM ({unaccounted_events})
        UNION ALL SELECT source_file FROM ({unaccounted_interventions})
    ) GROUP BY 1
)
SELECT m.path, m.records_read,
       coalesce(stored.n, 0) AS stored,
       coalesce(dups.n, 0) AS duplicates,
       m.quarantined_at_read + coalesce(later.n, 0) AS quarantined,
       coalesce(pending.n, 0) AS pending,
       m.records_read = coalesce(stored.n, 0) + coalesce(dups.n, 0) + m.quarantined_at_read
                        + coalesce(later.n, 0) + coalesce(pending.n, 0) AS balanced
FROM m
LEFT JOIN stored ON stored.source_file = m.path
LEFT JOIN dups ON dups.source_file = m.path
LEFT JOIN later ON later.source_file = m.path
LEFT JOIN pending ON pending.source_file = m.path
ORDER BY m.path
