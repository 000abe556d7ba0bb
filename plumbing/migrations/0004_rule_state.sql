-- The rules worker's memory, stored with the alerts it caused and the offsets it consumed
-- (one transaction per batch): after a restart or a rebalance a worker resumes exactly
-- where the state says, so nothing is alerted twice and no timer is lost.
CREATE TABLE rule_state (
    device_id  text PRIMARY KEY,
    partition  integer     NOT NULL,  -- of carewatch.events.v1: who owns this device
    state      jsonb       NOT NULL,  -- {rule name: that rule's state}
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_state_partition ON rule_state (partition);

CREATE TABLE consumer_positions (
    group_id    text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Per-resident rule overrides, merged over deploy/rules.toml (see alerts/rules/config.py).
CREATE TABLE resident_rules (
    resident_id bigint PRIMARY KEY REFERENCES residents (resident_id),
    overrides   jsonb       NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
