-- The API lists devices with their newest battery level and worn state, read from the
-- stored events. Those are a sliver of the events, far apart in time for a device that
-- reports its position every minute: without this index the newest battery event of a
-- device that has not sent one for weeks is found by reading all its events since.
CREATE INDEX events_device_readings ON events (device_id, kind, ts DESC)
    WHERE kind IN ('battery', 'worn');
