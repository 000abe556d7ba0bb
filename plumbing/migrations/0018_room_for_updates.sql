-- Room on each page for the rows that are rewritten with nearly every event: a device's
-- rule state (the rules worker, once per device and batch) and its last_seen (telemetry).
-- A new row version that fits on its own page is a HOT update: no new index entries and
-- nothing to vacuum from the indexes. Full pages (fillfactor 100) sent two thirds of the
-- rule-state saves of a bench run elsewhere: 300 batches of 700 devices' 1.3 kB states
-- on the embedded PostgreSQL made the table 75 MB against 6.8 MB here (every save HOT),
-- at 15-16 instead of 17-20 µs of PostgreSQL's CPU a save (docs/benchmarks.md, round 10).
-- Pages filled before this keep their rows; new and pruned ones keep the room.
ALTER TABLE rule_state SET (fillfactor = 50);
ALTER TABLE devices SET (fillfactor = 50);
