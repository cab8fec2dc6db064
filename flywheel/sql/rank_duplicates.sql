-- Rank the staged copies of each id: the first copy seen (earliest file, then path, then line)
-- is kept; a later copy with the same content hash is an exact duplicate, a later copy with
-- different content a conflict. Ranks on the key columns only (with `staged`'s row id), not on
-- every text column: the window sort then moves ~100 bytes a row instead of ~1 KB; the full rows
-- are joined back by row id only where they are needed.
-- Slots: `id`, the id column of the record kind; `rid`, `staged`'s row id (`rowid` of a table, or
-- the `_rid` column of a view over the staged Parquet pieces).
CREATE OR REPLACE TEMP TABLE ranked AS
SELECT *,
    CASE WHEN rn = 1 THEN 'keep' WHEN record_hash = first_hash THEN 'duplicate' ELSE 'conflict' END AS verdict
FROM (
    SELECT *,
        row_number() OVER w AS rn,
        first_value(record_hash) OVER w AS first_hash,
        first_value(source_file) OVER w AS first_file,
        first_value(source_line) OVER w AS first_line
    FROM (
        SELECT {rid} AS _rid, "{id}", occurred_at, event_occurred_at, record_hash, ingest_seq,
               source_file, source_line
        FROM staged
    )
    WINDOW w AS (PARTITION BY "{id}" ORDER BY ingest_seq, source_file, source_line
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
);
