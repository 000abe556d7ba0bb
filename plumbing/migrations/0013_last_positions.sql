-- The console's map shows each resident's newest position. Positions are found among a
-- device's events by kind; without this index the newest one of a device that sends many
-- other events (heartbeats, vitals) is found by reading all of them since. The predicate
-- is the one alerts/history_views.py's position queries use.
CREATE INDEX events_device_positions ON events (device_id, ts DESC)
    WHERE kind IN ('location', 'sos', 'fall') AND body ? 'lat';
