-- Exact duplicates dropped from a partition, each pointing at the copy that was kept.
-- Slots: `id`, the id column of the record kind. Parameter: the record kind.
SELECT ? AS record_kind, "{id}" AS record_id, source_file, source_line,
       first_file AS kept_file, first_line AS kept_line
FROM ranked
WHERE verdict = 'duplicate'
ORDER BY source_file, source_line;
