"""Prometheus metrics of the ingest process."""

import functools

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("carewatch_ingest_messages", "MQTT messages received", ["codec"])
EVENTS = Counter("carewatch_ingest_events", "canonical events written to Kafka", ["kind"])
REJECTS = Counter("carewatch_ingest_rejects", "payloads or elements sent to the DLQ", ["reason"])
UNVERIFIED_ALARMS = Counter(
    "carewatch_ingest_unverified_alarms",
    "alarm events let through from devices the registry could not be asked about",
)
RETAINED_SKIPPED = Counter(
    "carewatch_ingest_retained_skipped",
    "retained messages the broker sent on subscribing, acknowledged and not used",
)
ACKED = Counter("carewatch_ingest_acked", "MQTT messages acknowledged after the Kafka write")
PRODUCE_RETRIES = Counter("carewatch_ingest_produce_retries", "Kafka writes retried after failure")
INFLIGHT = Gauge("carewatch_ingest_inflight", "MQTT messages received but not yet acknowledged")
PRODUCE_SECONDS = Histogram(
    "carewatch_ingest_produce_seconds",
    "time from MQTT receive to Kafka acknowledging every record of the message",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


# `.labels()` looks its child up under a lock on every call; ingest counts every record,
# and the label values are closed sets (codecs, event kinds, reject reasons).
@functools.cache
def labelled(metric: Counter, value: str) -> Counter:
    """`metric.labels(value)`, looked up once."""
    return metric.labels(value)


# The alarm fast path (ingest/alarm_reader.py, `carewatch alarms`).
FAST_PATH = Counter(
    "carewatch_alarm_fast_path_messages",
    "alarm-topic messages the fast path took: raised (here first), already (by ingest's"
    " path first), no_alarm (none after the checks), or left to ingest's path"
    " (device_over_allowance, queue_full, failed)",
    ["outcome"],
)
FAST_PATH_SECONDS = Histogram(
    "carewatch_alarm_fast_path_seconds",
    "time from the fast path receiving an alarm message to its alerts applied in PostgreSQL",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
