-- Telemetry that lasts a year: `events` becomes a table partitioned by day of device time
-- (`ts`, UTC days), so a day is dropped whole when it passes CAREWATCH_RETENTION_DAYS
-- and a resident's 24-hour timeline reads one or two days' indexes, however many days are
-- kept. docs/events-storage.md explains the choices; alerts/partitions.py maintains it.
--
-- Deduplication. A unique index of a partitioned table must include the partition key, so
-- the primary key on event_id alone cannot stay. Each day's partition has its own unique
-- index on event_id instead, and telemetry inserts with a bare ON CONFLICT DO NOTHING,
-- which takes every unique index of the partition a row lands in as an arbiter. A
-- redelivered event has the same event_id and the same device time, so the same day and
-- the same partition: skipped as before. Where the receive time stands in for a missing or
-- implausible device time (ts = received_at), a redelivery carries a later ts, possibly a
-- day later: alerts/event_store.py looks those up across the neighbouring days first.
--
-- No DEFAULT partition: a default holding rows of a day blocks attaching that day's
-- partition, keeps PostgreSQL from scanning the partitions in order for `ORDER BY ts
-- DESC LIMIT 1` and forbids DETACH ... CONCURRENTLY. A row whose day has no partition
-- makes the INSERT fail; the writer then adds the day with events_add_partition and
-- stores the batch again.
--
-- Nothing references events (alert_events keeps the event_id without a foreign key), so
-- the swap below breaks no constraint. This migration rewrites the table in one
-- transaction: on a large installation, plan the downtime (docs/events-storage.md).

ALTER TABLE events RENAME TO events_0016;
ALTER TABLE events_0016 RENAME CONSTRAINT events_pkey TO events_0016_pkey;
ALTER INDEX events_device_ts RENAME TO events_0016_device_ts;
ALTER INDEX events_alarms_received RENAME TO events_0016_alarms_received;
ALTER INDEX events_device_readings RENAME TO events_0016_device_readings;
ALTER INDEX events_device_positions RENAME TO events_0016_device_positions;

CREATE TABLE events (
    event_id    text        NOT NULL,  -- unique per day: each partition's events_pYYYYMMDD_id
    device_id   text        NOT NULL,
    kind        text        NOT NULL,
    ts          timestamptz NOT NULL,  -- device time: the partition key (UTC days)
    received_at timestamptz NOT NULL,
    source      text        NOT NULL,
    body        jsonb       NOT NULL,  -- the canonical event as published on Kafka
    stored_at   timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);

-- The indexes of 0001, 0007, 0011 and 0013, now on every partition. The timeline's
-- (device_id, ts DESC) and the others keep their names on the partitioned table.
CREATE INDEX events_device_ts ON events (device_id, ts DESC);
CREATE INDEX events_alarms_received ON events (received_at) WHERE kind IN ('sos', 'fall');
CREATE INDEX events_device_readings ON events (device_id, kind, ts DESC)
    WHERE kind IN ('battery', 'worn');
CREATE INDEX events_device_positions ON events (device_id, ts DESC)
    WHERE kind IN ('location', 'sos', 'fall') AND body ? 'lat';

-- The partition of one UTC day, added if missing; true if this call added it. Built apart
-- and then attached: ATTACH PARTITION takes only a SHARE UPDATE EXCLUSIVE lock on
-- `events`, so telemetry's inserts and the API's reads go on meanwhile (CREATE TABLE ...
-- PARTITION OF would lock them out). The CHECK constraint spares ATTACH a scan of the new
-- table; the partitioned indexes are built on it by ATTACH, the per-day unique index here.
CREATE FUNCTION events_add_partition(day date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    part text := 'events_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    -- One writer at a time adds partitions (two telemetry workers may miss the same day).
    PERFORM pg_advisory_xact_lock(hashtext('carewatch.events_add_partition'));
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'events'::regclass AND c.relname = part) THEN
        RETURN false;
    END IF;
    IF to_regclass(part) IS NOT NULL THEN  -- detached by hand (to archive it?): keep it
        RAISE EXCEPTION 'table % exists but is not a partition of events: rename it', part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS)', part);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (ts >= %L AND ts < %L)',
                   part, part || '_range', lo, hi);
    EXECUTE format('CREATE UNIQUE INDEX %I ON %I (event_id)', part || '_id', part);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_range');
    RETURN true;
END $$;

-- The days the stored events fall on, and today and the next three (the telemetry worker
-- keeps adding days ahead from now on).
SELECT events_add_partition(day)
FROM (SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date AS day FROM events_0016
      UNION
      SELECT (now() AT TIME ZONE 'UTC')::date + n FROM generate_series(0, 3) n) days
ORDER BY day;

INSERT INTO events (event_id, device_id, kind, ts, received_at, source, body, stored_at)
SELECT event_id, device_id, kind, ts, received_at, source, body, stored_at FROM events_0016;

DROP TABLE events_0016;
