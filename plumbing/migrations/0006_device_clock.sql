-- The time zone a device's clock is set to, for formats whose device time carries no
-- offset (the 3G/4G watch protocol's ddmmyy,hhmmss). NULL: the clock runs on UTC.
-- Many watches run on local time; without this their positions looked hours in the future.
ALTER TABLE devices ADD COLUMN clock_tz text;
-- Ingest decodes with it, so a change must reach ingest's copy of the registry.
DROP TRIGGER devices_changed ON devices;
CREATE TRIGGER devices_changed AFTER INSERT OR UPDATE OF format, model, status, resident_id,
    clock_tz OR DELETE ON devices FOR EACH ROW EXECUTE FUNCTION devices_notify();
