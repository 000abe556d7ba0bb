-- What a call handler needs about a resident on one screen, the people to call about them
-- (contacts and their channels), and the order to call them in (the escalation ladder
-- the notifier walks: elder -> neighbour -> community worker -> family -> 110/120).
ALTER TABLE residents
    ADD COLUMN sex           text CHECK (sex IN ('female', 'male', 'other')),
    ADD COLUMN birth_year    integer CHECK (birth_year BETWEEN 1880 AND 2100),
    ADD COLUMN phone         text,
    ADD COLUMN languages     text[] NOT NULL DEFAULT '{}',  -- e.g. {zh-CN, wuu}: first is best
    ADD COLUMN dialect       text,                          -- free text: "Shanghainese, slow"
    ADD COLUMN living_alone  boolean,                       -- NULL: not known
    ADD COLUMN medical_notes text,
    ADD COLUMN allergies     text,
    ADD COLUMN gp_name       text,
    ADD COLUMN gp_phone      text,
    ADD COLUMN photo_url     text,
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now();

-- Contacts belong to an area like residents do (who may see and change them); a neighbour
-- may be the contact of several residents, so they are rows of their own.
CREATE TABLE contacts (
    contact_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL CHECK (name <> ''),
    relationship text        NOT NULL CHECK (relationship IN
                             ('family', 'neighbour', 'community_worker', 'doctor', 'other')),
    language     text        NOT NULL DEFAULT 'zh-CN',  -- what the notifier writes to them in
    phones       text[]      NOT NULL DEFAULT '{}',
    area         text        NOT NULL DEFAULT '' CHECK (area = '' OR area ~ '^[^/]+(/[^/]+)*$'),
    notes        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_name ON contacts (name, contact_id);

-- How to reach a contact. `secret` is what the notifier needs in clear to use the channel
-- (a webhook's HMAC key, a bot's signing secret), so it cannot be hashed; the API never
-- returns it (devices/contacts.py reads it only in `channel_secrets`).
CREATE TABLE contact_channels (
    contact_id bigint   NOT NULL REFERENCES contacts (contact_id) ON DELETE CASCADE,
    position   smallint NOT NULL,
    type       text     NOT NULL CHECK (type IN
                        ('sms', 'voice', 'email', 'wecom', 'dingtalk', 'feishu', 'webhook')),
    address    text     NOT NULL CHECK (address <> ''),
    secret     text,
    PRIMARY KEY (contact_id, position)
);

-- The contacts of a resident (family, neighbour, GP...), whether or not on the ladder.
CREATE TABLE resident_contacts (
    resident_id bigint NOT NULL REFERENCES residents (resident_id) ON DELETE CASCADE,
    contact_id  bigint NOT NULL REFERENCES contacts (contact_id) ON DELETE CASCADE,
    PRIMARY KEY (resident_id, contact_id)
);
CREATE INDEX resident_contacts_contact ON resident_contacts (contact_id);

-- The ladder: steps in order, each calling its contacts at once and waiting `wait_s` for
-- an acknowledgement before the next; the whole ladder runs `repeat` more times.
CREATE TABLE escalations (
    resident_id bigint      PRIMARY KEY REFERENCES residents (resident_id) ON DELETE CASCADE,
    repeat      smallint    NOT NULL CHECK (repeat BETWEEN 0 AND 10),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE escalation_steps (
    resident_id bigint   NOT NULL REFERENCES escalations (resident_id) ON DELETE CASCADE,
    step        smallint NOT NULL CHECK (step >= 0),
    wait_s      integer  NOT NULL CHECK (wait_s BETWEEN 10 AND 3600),
    PRIMARY KEY (resident_id, step)
);
-- No cascade from contacts: a contact still on a ladder must not vanish from it silently
-- (deleting it is refused until the ladder no longer names it).
CREATE TABLE escalation_step_contacts (
    resident_id bigint   NOT NULL,
    step        smallint NOT NULL,
    position    smallint NOT NULL,
    contact_id  bigint   NOT NULL REFERENCES contacts (contact_id),
    PRIMARY KEY (resident_id, step, position),
    FOREIGN KEY (resident_id, step) REFERENCES escalation_steps (resident_id, step)
        ON DELETE CASCADE
);
CREATE INDEX escalation_step_contacts_contact ON escalation_step_contacts (contact_id);

-- A resident's timeline reads their alerts by time (alerts/history_views.py); without this
-- it scans every alert.
CREATE INDEX alerts_resident_opened ON alerts (resident_id, opened_at DESC);
