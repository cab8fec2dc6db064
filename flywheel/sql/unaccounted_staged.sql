-- Staged records of one kind not yet accounted for: neither stored, nor dropped as an exact
-- duplicate, nor quarantined while building a day (they are pending).
-- Slots (relations of that kind): `staged`, `stored`, `duplicates`, `quarantine`.
SELECT s.* FROM {staged} s
ANTI JOIN (
    SELECT source_file, source_line FROM {stored}
    UNION ALL SELECT source_file, source_line FROM {duplicates}
    UNION ALL SELECT source_file, source_line FROM {quarantine}
) done USING (source_file, source_line)
