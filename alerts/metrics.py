"""Prometheus metrics of the worker processes (rules, telemetry)."""

from prometheus_client import Counter, Histogram

CONSUMED = Counter("carewatch_worker_records", "Kafka records consumed", ["worker"])
BAD_RECORDS = Counter(
    "carewatch_worker_bad_records", "records that are not canonical events", ["worker"]
)
BATCH_SIZE = Histogram(
    "carewatch_worker_batch_size",
    "records per handled batch",
    ["worker"],
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
)
BATCH_SECONDS = Histogram("carewatch_worker_batch_seconds", "time to handle one batch", ["worker"])
BATCH_RETRIES = Counter(
    "carewatch_worker_batch_retries", "batches retried after an error", ["worker"]
)
STORED = Counter("carewatch_telemetry_rows", "event rows inserted (duplicates not counted)")
ALERTS = Counter("carewatch_alerts_changes", "alert changes", ["kind", "change"])
