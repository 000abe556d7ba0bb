-- What an operator does with an alert besides acknowledging and resolving it: assign it,
-- put it on hold until a time, write notes, record call-backs. The status stays
-- open -> acknowledged -> resolved; each of these is a change in `alert_history` too, so
-- it is published on carewatch.alerts.v1 like the others.
ALTER TABLE alerts
    ADD COLUMN resolution_code text   -- why an operator resolved it (alerts/store.py)
        CHECK (resolution_code IN ('false_alarm', 'assisted_at_home', 'ambulance', 'police',
                                   'no_answer_visited', 'device_fault', 'test', 'other')),
    ADD COLUMN assigned_to     text,  -- a user's name
    ADD COLUMN held_until      timestamptz,
    ADD COLUMN hold_reason     text;

ALTER TABLE alert_history DROP CONSTRAINT alert_history_change_check;
ALTER TABLE alert_history ADD CONSTRAINT alert_history_change_check CHECK (change IN (
    'opened', 'repeated', 'acknowledged', 'resolved', 'assigned', 'held', 'noted', 'called'
));

CREATE TABLE alert_notes (
    note_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint      NOT NULL REFERENCES alerts (alert_id),
    at       timestamptz NOT NULL DEFAULT now(),
    author   text        NOT NULL,
    text     text        NOT NULL CHECK (text <> '')
);
CREATE INDEX alert_notes_alert ON alert_notes (alert_id, note_id);

-- The call-back ladder (the resident, a neighbour, the community worker, family, 110/120):
-- whom the operator called and what came of it.
CREATE TABLE alert_calls (
    call_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint      NOT NULL REFERENCES alerts (alert_id),
    at       timestamptz NOT NULL DEFAULT now(),
    caller   text        NOT NULL,
    callee   text        NOT NULL,  -- who was called: 'daughter', 'neighbour Wang', '120'
    number   text        NOT NULL,
    outcome  text        NOT NULL
                         CHECK (outcome IN ('answered', 'no_answer', 'busy', 'wrong_number',
                                            'voicemail'))
);
CREATE INDEX alert_calls_alert ON alert_calls (alert_id, call_id);
