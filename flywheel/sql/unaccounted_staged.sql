SELECT s.* FROM {staged_KIND} s
ANTI JOIN (
    SELECT source_file, source_line FROM {KIND}
    UNION ALL SELECT source_file, source_line FROM {duplicates_KIND}
    UNION ALL SELECT source_file, source_line FROM {quarantine_KIND}
) done USING (source_file, source_line)
