"""Prometheus metrics of the watch TCP gateway (`ingest.watch_gateway`)."""

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BYTES_SKIPPED",
    "CLOSED",
    "CONNECTIONS",
    "FRAMES",
    "INVALID_FRAMES",
    "OPEN_CONNECTIONS",
    "PUBLISHED",
    "PUBLISH_SECONDS",
    "REPLIES",
]

CONNECTIONS = Counter("carewatch_gateway_connections", "watch TCP connections accepted")
OPEN_CONNECTIONS = Gauge("carewatch_gateway_open_connections", "watch TCP connections open now")
CLOSED = Counter(
    "carewatch_gateway_closed",
    "watch connections closed, by why: eof, idle_timeout, frame_too_large, device_changed, "
    "publish_failed, replaced, shutdown, reset, error",
    ["reason"],
)
# `type` is the frame type when we know it, else "other": the label set stays bounded.
FRAMES = Counter("carewatch_gateway_frames", "frames received from watches", ["type"])
INVALID_FRAMES = Counter(
    "carewatch_gateway_invalid_frames", "frames the splitter delimited but that do not parse"
)
BYTES_SKIPPED = Counter(
    "carewatch_gateway_bytes_skipped", "bytes between frames (garbage) skipped by the splitter"
)
PUBLISHED = Counter("carewatch_gateway_published", "frames published to MQTT and acknowledged")
REPLIES = Counter("carewatch_gateway_replies", "replies sent to watches, after the PUBACK")
PUBLISH_SECONDS = Histogram(
    "carewatch_gateway_publish_seconds",
    "time from a frame's arrival to the broker's PUBACK",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
