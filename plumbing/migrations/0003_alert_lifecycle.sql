-- The alert lifecycle: open -> acknowledged -> resolved (or open -> resolved), who did
-- what, and every change in `alert_history`, which is also the outbox of
-- carewatch.alerts.v1 (alerts/outbox.py publishes its rows, then sets published_at).
ALTER TABLE alerts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN resolved_by     text,       -- an operator, or 'rules' when the condition cleared
    ADD COLUMN resolution      text;       -- the operator's note, or the rule's reason

-- Nothing has resolved an alert before this migration; should a hand-edited row say so
-- anyway, give it the times the checks below require.
UPDATE alerts SET resolved_at = updated_at WHERE status = 'resolved' AND resolved_at IS NULL;
UPDATE alerts SET acknowledged_at = updated_at
    WHERE status = 'acknowledged' AND acknowledged_at IS NULL;
ALTER TABLE alerts
    ADD CONSTRAINT alerts_resolved_has_time
        CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
    ADD CONSTRAINT alerts_acknowledged_has_time
        CHECK (status <> 'acknowledged' OR acknowledged_at IS NOT NULL);

-- A ResolveAlert that found nothing to resolve is remembered by its key too (with no
-- alert), so a replay of it cannot resolve an alert opened after it.
ALTER TABLE alert_events ALTER COLUMN alert_id DROP NOT NULL;

-- Every change of every alert, in order. Alerts raised before this migration have no
-- 'opened' row: their changes were published directly, before the outbox existed.
CREATE TABLE alert_history (
    history_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     bigint      NOT NULL REFERENCES alerts (alert_id),
    at           timestamptz NOT NULL DEFAULT now(),
    change       text        NOT NULL
                             CHECK (change IN ('opened', 'repeated', 'acknowledged', 'resolved')),
    actor        text        NOT NULL,  -- the operator, or 'rules' for automatic changes
    note         text,                  -- operator's note, rule's reason, evidence summary
    status       text        NOT NULL   -- the alert's status and count after the change
                             CHECK (status IN ('open', 'acknowledged', 'resolved')),
    count        integer     NOT NULL,
    published_at timestamptz            -- on carewatch.alerts.v1 (acked by Kafka); NULL = not yet
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, history_id);
-- The outbox's queue: small (rows leave it within a second), so the publisher's scan is cheap.
CREATE INDEX alert_history_unpublished ON alert_history (history_id) WHERE published_at IS NULL;

-- Wakes the publisher. Per statement, with no payload: PostgreSQL folds identical
-- notifications of one transaction into one, so a batch of changes is one wake-up.
CREATE FUNCTION alert_history_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('carewatch_alert_history', '');
    RETURN NULL;
END $$;
CREATE TRIGGER alert_history_added AFTER INSERT ON alert_history
    FOR EACH STATEMENT EXECUTE FUNCTION alert_history_notify();
