"""Prometheus metrics of the worker processes (rules, telemetry); the consumer's own are in
plumbing/consumer.py."""

from prometheus_client import Counter, Gauge, Histogram

STORED = Counter("carewatch_telemetry_rows", "event rows inserted (duplicates not counted)")
ALERTS = Counter("carewatch_alerts_changes", "alert changes", ["kind", "change"])

# The outbox of carewatch.alerts.v1 (alerts/outbox.py).
ALERTS_PUBLISHED = Counter(
    "carewatch_alerts_published", "alert changes published and acked by Kafka", ["change"]
)
ALERT_PUBLISH_LAG = Histogram(
    "carewatch_alerts_publish_lag_seconds",
    "from an alert change's transaction to its publication being marked",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ALERT_OUTBOX_OLDEST = Gauge(
    "carewatch_alerts_outbox_oldest_seconds",
    "age of the oldest alert change not yet published (0: none waiting)",
)
ALERT_PUBLISH_FAILURES = Counter(
    "carewatch_alerts_publish_failures", "publishing rounds that failed and will be retried"
)
