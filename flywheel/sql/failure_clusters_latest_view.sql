-- failures.clusters: the cluster snapshot of the latest night. The typed empty row source keeps the
-- view valid before any night is built (the clusters slot is then a relation without an event_date).
SELECT * FROM (
    SELECT CAST(NULL AS DATE) AS event_date WHERE false
    UNION ALL BY NAME
    SELECT * FROM {table:failures/clusters}
)
QUALIFY event_date = max(event_date) OVER ()
