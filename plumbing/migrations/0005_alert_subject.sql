-- One open alert per person for the alarms (sos, fall): a resident's pendant and watch
-- pressing SOS are one call for help, counted on one alert. Other kinds stay per device:
-- their conditions (a flat battery, a silent device, a position outside a zone) clear per
-- device, and one device's evidence must not resolve another's.
ALTER TABLE alerts ADD COLUMN resident_id bigint;  -- the device's resident when raised
ALTER TABLE alerts ADD COLUMN subject text;        -- 'resident:<id>' or 'device:<id>'
UPDATE alerts SET subject = 'device:' || device_id;
ALTER TABLE alerts ALTER COLUMN subject SET NOT NULL;
DROP INDEX alerts_one_active;
CREATE UNIQUE INDEX alerts_one_active ON alerts (subject, kind) WHERE status <> 'resolved';
