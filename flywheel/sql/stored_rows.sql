-- The rows a partition stores: the kept copy of each id, in time order.
-- Slots: `columns`, the stored table's columns (each `a."<name>"`); `id`, the id column; `rid`,
-- `staged`'s row id (as in rank_duplicates).
SELECT {columns}
FROM ranked r JOIN staged a ON a.{rid} = r._rid
WHERE r.verdict = 'keep'
ORDER BY a.occurred_at, a."{id}"
