-- The people who use the API (monitoring-centre operators, supervisors, admins), their
-- bearer tokens, and the audit trail of every change made through the API or the CLI.

-- Areas are paths of jurisdiction, city/district/sub-district/community, e.g.
-- 'shanghai/xuhui/tianping/community-3'; '' is the top, which covers every area. A user
-- sees what lies in their area or below it (api/areas.py); the check keeps every stored
-- path in the one form that rule compares: no leading, trailing or doubled '/'.
CREATE TABLE users (
    user_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role          text        NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin')),
    area          text        NOT NULL DEFAULT ''
                              CHECK (area = '' OR area ~ '^[^/]+(/[^/]+)*$'),
    password_hash text        NOT NULL,  -- argon2id (PHC string); never the password
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled      boolean     NOT NULL DEFAULT false
);

-- Tokens are 32 random bytes: a fast hash is enough (nothing to guess from), and lets a
-- request find its token by an index lookup instead of trying a slow hash per token.
CREATE TABLE api_tokens (
    token_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (user_id),
    token_hash   bytea       NOT NULL UNIQUE,  -- sha256 of the token
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz                   -- to the minute: not a write per request
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Who changed what, when, with the object before and after (NULL: created / deleted).
CREATE TABLE audit (
    audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL,  -- a user's name, or 'cli:<os user>', or 'up'
    action   text        NOT NULL,  -- e.g. 'alert.ack', 'user.create'
    target   text        NOT NULL,  -- e.g. 'alert:42', 'user:alice'
    before   jsonb,
    after    jsonb
);
-- Newest first is a backward scan of the primary key; by actor needs its own index.
CREATE INDEX audit_actor ON audit (actor, audit_id);

ALTER TABLE residents ADD COLUMN area text NOT NULL DEFAULT ''
    CHECK (area = '' OR area ~ '^[^/]+(/[^/]+)*$');
