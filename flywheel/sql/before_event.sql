-- An intervention stamped earlier than its event (beyond the clock-skew tolerance, in seconds,
-- the parameter) is quarantined instead of stored.
UPDATE ranked SET verdict = 'before_event'
WHERE verdict = 'keep' AND occurred_at < event_occurred_at - to_seconds(?);
