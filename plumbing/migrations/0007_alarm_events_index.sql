-- The reconciliation (alerts/reconcile.py) looks for stored SOS and fall events without an
-- alert, by receive time, every minute: only alarms are indexed, a sliver of the table.
CREATE INDEX events_alarms_received ON events (received_at) WHERE kind IN ('sos', 'fall');
