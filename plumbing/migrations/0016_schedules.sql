-- On-call schedules: who the notifier reaches when an escalation step says "whoever is on
-- call", and (role 'supervisors') the supervisor on duty for an area, reached when nobody
-- acknowledges an alert in time. notifier/schedule_store.py owns these tables.
--
-- A schedule is a union of rotations (layers): in each, its contacts take turns of
-- `shift_s` seconds from `start`, in order. Overrides replace the rotations' people
-- entirely for their interval [starts_at, ends_at).
CREATE TABLE schedules (
    schedule_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (name <> ''),
    area        text        NOT NULL DEFAULT '' CHECK (area = '' OR area ~ '^[^/]+(/[^/]+)*$'),
    role        text        NOT NULL DEFAULT 'oncall'
                            CONSTRAINT schedules_role CHECK (role IN ('oncall', 'supervisors')),
    time_zone   text        NOT NULL DEFAULT 'Asia/Shanghai',  -- IANA; for people reading it
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_name ON schedules (name, schedule_id);
-- The supervisor on duty: the supervisors' schedules whose area covers an alert's.
CREATE INDEX schedules_role_area ON schedules (role, area);

-- `start` is an instant (timestamptz) and a shift a fixed number of seconds: in a zone with
-- daylight saving the local hand-off time moves by an hour twice a year (not in China).
CREATE TABLE schedule_rotations (
    schedule_id bigint      NOT NULL REFERENCES schedules (schedule_id) ON DELETE CASCADE,
    position    smallint    NOT NULL CHECK (position >= 0),
    start       timestamptz NOT NULL,  -- when the first contact's first turn begins
    shift_s     integer     NOT NULL DEFAULT 604800  -- one turn; a week
                            CONSTRAINT schedule_rotations_shift_s
                            CHECK (shift_s BETWEEN 3600 AND 31 * 86400),
    PRIMARY KEY (schedule_id, position)
);

-- A rotation's contacts in turn order (one may take several turns). No cascade from
-- contacts: a contact on a schedule must not vanish from it silently, so deleting one is
-- refused (constraint schedule_rotation_contacts_contact_fk) until no schedule names it.
CREATE TABLE schedule_rotation_contacts (
    schedule_id bigint   NOT NULL,
    rotation    smallint NOT NULL,
    position    smallint NOT NULL CHECK (position >= 0),
    contact_id  bigint   NOT NULL
                         CONSTRAINT schedule_rotation_contacts_contact_fk
                         REFERENCES contacts (contact_id),
    PRIMARY KEY (schedule_id, rotation, position),
    FOREIGN KEY (schedule_id, rotation) REFERENCES schedule_rotations (schedule_id, position)
        ON DELETE CASCADE
);
CREATE INDEX schedule_rotation_contacts_contact ON schedule_rotation_contacts (contact_id);

-- Someone else on call for a while (a swap, a holiday). Deleting a contact an override
-- names is refused too (schedule_overrides_contact_fk), ended overrides included: delete
-- the override first.
CREATE TABLE schedule_overrides (
    override_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id bigint      NOT NULL REFERENCES schedules (schedule_id) ON DELETE CASCADE,
    contact_id  bigint      NOT NULL
                            CONSTRAINT schedule_overrides_contact_fk
                            REFERENCES contacts (contact_id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedule_overrides_interval CHECK (ends_at > starts_at)
);
CREATE INDEX schedule_overrides_schedule ON schedule_overrides (schedule_id, ends_at);
CREATE INDEX schedule_overrides_contact ON schedule_overrides (contact_id);

-- A ladder step naming a schedule (0015_notifications.sql): the schedule cannot be deleted
-- while one does (the API answers 409).
ALTER TABLE escalation_step_schedules
    ADD CONSTRAINT escalation_step_schedules_schedule_fk
    FOREIGN KEY (schedule_id) REFERENCES schedules (schedule_id);
