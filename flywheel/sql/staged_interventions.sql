-- The staged interventions of an event day: those whose event is in the day's events
-- (`day_events`), each attached to that day (the parameter) and its event's time. Joined while
-- reading: of the ~30 days of staged interventions in the window only those whose event is in
-- this day are kept, so the rest are never materialised.
-- Slots: `source`, the staged interventions (a read_parquet over the window's files, or a table).
CREATE OR REPLACE TEMP TABLE staged AS
SELECT s.* REPLACE (CAST(? AS DATE) AS event_date), e.occurred_at AS event_occurred_at
FROM {source} s JOIN day_events e USING (event_id)
