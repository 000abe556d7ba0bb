-- The people carewatch watches over, and the devices that speak for them.
CREATE TABLE residents (
    resident_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (name <> ''),
    address     text,
    home_lat    double precision CHECK (home_lat BETWEEN -90 AND 90),
    home_lon    double precision CHECK (home_lon BETWEEN -180 AND 180),
    timezone    text        NOT NULL DEFAULT 'Asia/Shanghai',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((home_lat IS NULL) = (home_lon IS NULL))
);

CREATE TABLE devices (
    device_id     text PRIMARY KEY,
    format        text        NOT NULL,  -- the codec that decodes it
    model         text,                  -- e.g. ws101: picks a payload decoder
    resident_id   bigint REFERENCES residents (resident_id),
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    mqtt_username text UNIQUE,           -- NULL: it reaches us through a gateway/integration
    secret_hash   text,                  -- mosquitto PBKDF2-SHA512 ($7$...); never the secret
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz
);
CREATE INDEX devices_resident ON devices (resident_id);

-- Broker accounts of carewatch's own processes (ingest reads, the watch gateway writes).
CREATE TABLE mqtt_service_users (
    username    text PRIMARY KEY,
    role        text        NOT NULL CHECK (role IN ('ingest', 'gateway', 'lorawan')),
    secret_hash text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Ingest caches the registry; this tells it (and the broker-auth writer) what changed.
CREATE FUNCTION devices_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('carewatch_devices', coalesce(NEW.device_id, OLD.device_id));
    RETURN NULL;
END $$;
CREATE TRIGGER devices_changed AFTER INSERT OR UPDATE OF format, model, status, resident_id
    OR DELETE ON devices FOR EACH ROW EXECUTE FUNCTION devices_notify();
