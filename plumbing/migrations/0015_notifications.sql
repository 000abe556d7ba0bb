-- The notifier (notifier/): who is told about an alert, on which channel, and what came
-- of it. `notifications` is both the outbox of deliveries (written in the transaction that
-- decides them) and the log the API and console show.

-- An acknowledgement that was never followed by a resolution re-opens the alert.
ALTER TABLE alert_history DROP CONSTRAINT alert_history_change_check;
ALTER TABLE alert_history ADD CONSTRAINT alert_history_change_check CHECK (change IN (
    'opened', 'repeated', 'acknowledged', 'resolved', 'assigned', 'held', 'noted', 'called',
    'dispatched', 'order_accepted', 'order_reported', 'followed_up', 'reopened'
));

-- When a contact may be woken for what is not critical (local times in their zone;
-- from > to spans midnight). NULL: any time.
ALTER TABLE contacts
    ADD COLUMN quiet_from time,
    ADD COLUMN quiet_to   time,
    ADD COLUMN time_zone  text NOT NULL DEFAULT 'Asia/Shanghai',
    ADD CONSTRAINT contacts_quiet_both CHECK ((quiet_from IS NULL) = (quiet_to IS NULL));

-- The policy for residents without a ladder of their own, per severity: the same steps a
-- ladder has, plus `resident_contacts` (every contact of the resident) as a target.
CREATE TABLE escalation_defaults (
    severity   text        PRIMARY KEY CHECK (severity IN ('critical', 'warning', 'info')),
    steps      jsonb       NOT NULL,
    repeat     smallint    NOT NULL CHECK (repeat BETWEEN 0 AND 20),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A ladder step may also call whoever is on call in a schedule (0016_schedules.sql adds
-- the foreign key once schedules exist).
CREATE TABLE escalation_step_schedules (
    resident_id bigint   NOT NULL,
    step        smallint NOT NULL,
    position    smallint NOT NULL,
    schedule_id bigint   NOT NULL,
    PRIMARY KEY (resident_id, step, position),
    FOREIGN KEY (resident_id, step) REFERENCES escalation_steps (resident_id, step)
        ON DELETE CASCADE
);
CREATE INDEX escalation_step_schedules_schedule ON escalation_step_schedules (schedule_id);

ALTER TABLE escalations DROP CONSTRAINT escalations_repeat_check;
ALTER TABLE escalations ADD CONSTRAINT escalations_repeat_check CHECK (repeat BETWEEN 0 AND 20);
ALTER TABLE escalation_steps DROP CONSTRAINT escalation_steps_wait_s_check;
ALTER TABLE escalation_steps ADD CONSTRAINT escalation_steps_wait_s_check
    CHECK (wait_s BETWEEN 1 AND 86400);

-- Where an alert's escalation stands. `policy` is the steps as they were when the alert
-- opened (a ladder changed meanwhile does not shift a running chain). `cycle` counts
-- re-openings, so a re-escalation's notifications get ids of their own.
CREATE TABLE notification_chains (
    alert_id      bigint      PRIMARY KEY REFERENCES alerts (alert_id) ON DELETE CASCADE,
    policy        jsonb       NOT NULL,
    state         text        NOT NULL
                  CHECK (state IN ('running', 'acknowledged', 'exhausted', 'stopped')),
    cycle         smallint    NOT NULL DEFAULT 0,
    round         smallint    NOT NULL DEFAULT 0,
    step          smallint    NOT NULL DEFAULT 0,  -- the step notified last
    due_at        timestamptz,  -- running: the next step; acknowledged: the ack timeout
    supervisor_at timestamptz,  -- no operator has taken it by then: tell the supervisor
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_chains_active ON notification_chains (alert_id)
    WHERE state <> 'stopped';
CREATE INDEX notification_chains_due ON notification_chains (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX notification_chains_supervisor ON notification_chains (supervisor_at)
    WHERE supervisor_at IS NOT NULL;

CREATE TABLE notifications (
    notification_id text        PRIMARY KEY,  -- stable: receivers deduplicate on it
    alert_id        bigint      NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    purpose         text        NOT NULL CHECK (purpose IN ('alert', 'resolved', 'supervisor')),
    cycle           smallint    NOT NULL,
    round           smallint    NOT NULL,
    step            smallint    NOT NULL,
    contact_id      bigint      REFERENCES contacts (contact_id) ON DELETE SET NULL,
    contact_name    text        NOT NULL,
    channel         text        NOT NULL,
    position        smallint    NOT NULL,  -- the contact's channel it goes to
    address         text        NOT NULL,
    language        text        NOT NULL,
    message         jsonb       NOT NULL,  -- rendered once: every retry sends the same
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN (
                    'pending', 'delivered', 'calling', 'accepted', 'declined', 'no_answer',
                    'failed', 'cancelled')),
    attempts        smallint    NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL,  -- pending: when to try (quiet hours, backoff)
    reply_code      text,  -- SMS: what a reply starts with to answer
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    answered_at     timestamptz
);
CREATE INDEX notifications_due ON notifications (due_at) WHERE status = 'pending';
CREATE INDEX notifications_alert ON notifications (alert_id, created_at);
-- An SMS reply names its code (6 digits); the sender's number then picks among the few.
CREATE INDEX notifications_reply ON notifications (reply_code) WHERE reply_code IS NOT NULL;
