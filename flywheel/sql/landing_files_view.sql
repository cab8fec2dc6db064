-- Every landing file read, from the store's manifests.
SELECT path, file_id, seq, format, folder, sha256, size AS size_bytes,
       "read" AS records_read,
       coalesce(staged.events, 0) AS staged_events,
       coalesce(staged.interventions, 0) AS staged_interventions,
       quarantined AS quarantined_at_read,
       bad_file, event_days, intervention_days
FROM {manifests}
