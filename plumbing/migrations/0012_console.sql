-- What the operator console needs besides alerts: work orders (派单 → 接单 → 回单 → 回访:
-- someone sent to a resident about an alert, and the call back afterwards), and each
-- user's console preferences.

-- A visit dispatched about an alert. The assignee is whoever goes (a community grid
-- worker, a carer, a team), free text: they are not users of carewatch, so the centre's
-- operator records each step for them. Steps happen in order, each once; each is also a
-- change in the alert's history (alerts/work_orders.py), so it is published on
-- carewatch.alerts.v1 with the alert's other changes.
CREATE TABLE work_orders (
    order_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id       bigint      NOT NULL REFERENCES alerts (alert_id),
    assignee       text        NOT NULL CHECK (assignee <> ''),
    phone          text,
    due_at         timestamptz NOT NULL,  -- when they should be on site
    status         text        NOT NULL DEFAULT 'dispatched'
                               CHECK (status IN ('dispatched', 'accepted', 'reported',
                                                 'followed_up')),
    outcome        text        CHECK (outcome IN ('visited_ok', 'assisted', 'hospital',
                                                  'not_home', 'false_alarm', 'other')),
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    dispatch_note  text,
    accepted_at    timestamptz,
    accepted_by    text,
    accept_note    text,
    reported_at    timestamptz,
    reported_by    text,
    report_note    text,
    followed_up_at timestamptz,
    followed_up_by text,
    follow_up_note text,
    -- A step's time is set exactly when the order has got that far.
    CHECK ((accepted_at IS NOT NULL) = (status IN ('accepted', 'reported', 'followed_up'))),
    CHECK ((reported_at IS NOT NULL) = (status IN ('reported', 'followed_up'))),
    CHECK ((outcome IS NOT NULL) = (reported_at IS NOT NULL)),
    CHECK ((followed_up_at IS NOT NULL) = (status = 'followed_up'))
);
CREATE INDEX work_orders_alert ON work_orders (alert_id, order_id);
-- The pending work list, soonest due first; finished orders drop out of it.
CREATE INDEX work_orders_pending_due ON work_orders (due_at, order_id)
    WHERE status IN ('dispatched', 'accepted');

ALTER TABLE alert_history DROP CONSTRAINT alert_history_change_check;
ALTER TABLE alert_history ADD CONSTRAINT alert_history_change_check CHECK (change IN (
    'opened', 'repeated', 'acknowledged', 'resolved', 'assigned', 'held', 'noted', 'called',
    'dispatched', 'order_accepted', 'order_reported', 'followed_up'
));

-- The console as each user wants it; NULL: the console's default (the browser's language,
-- the centre's time zone).
ALTER TABLE users
    ADD COLUMN language   text    CHECK (language IN ('zh-CN', 'en')),
    ADD COLUMN time_zone  text,   -- an IANA zone; checked by api/users.py (zoneinfo)
    ADD COLUMN large_text boolean NOT NULL DEFAULT false;

-- Acknowledgement statistics count the alerts opened in a window (alerts/ack_stats.py).
CREATE INDEX alerts_opened ON alerts (opened_at);
