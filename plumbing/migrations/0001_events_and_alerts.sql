-- Telemetry: every canonical event, once (idempotent on event_id).
CREATE TABLE events (
    event_id    text PRIMARY KEY,
    device_id   text        NOT NULL,
    kind        text        NOT NULL,
    ts          timestamptz NOT NULL,  -- device time
    received_at timestamptz NOT NULL,
    source      text        NOT NULL,
    body        jsonb       NOT NULL,  -- the canonical event as published on Kafka
    stored_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_device_ts ON events (device_id, ts DESC);

-- Alerts: at most one not-yet-resolved alert per (device, kind); repeats raise its count.
CREATE TABLE alerts (
    alert_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text        NOT NULL,
    device_id  text        NOT NULL,
    severity   text        NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    status     text        NOT NULL DEFAULT 'open'
                           CHECK (status IN ('open', 'acknowledged', 'resolved')),
    count      integer     NOT NULL DEFAULT 1,
    first_ts   timestamptz NOT NULL,  -- device time of the first event behind it
    last_ts    timestamptz NOT NULL,  -- device time of the latest
    opened_at  timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    lat        double precision,
    lon        double precision,
    summary    text        NOT NULL
);
CREATE UNIQUE INDEX alerts_one_active ON alerts (device_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_status_opened ON alerts (status, opened_at DESC);

-- The events behind each alert. The primary key makes a redelivered event count once.
CREATE TABLE alert_events (
    event_id text        NOT NULL,
    kind     text        NOT NULL,  -- alert kind
    alert_id bigint      NOT NULL REFERENCES alerts (alert_id),
    ts       timestamptz NOT NULL,
    PRIMARY KEY (event_id, kind)
);
CREATE INDEX alert_events_alert ON alert_events (alert_id);
