"""The notifier's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["ANSWERS", "CHAINS", "DECIDED", "SEND_SECONDS", "SENT"]

DECIDED = Counter(
    "carewatch_notifications_decided", "notifications decided (outbox rows)", ["purpose"]
)
SENT = Counter(
    "carewatch_notifications_sent",
    "delivery attempts by channel and outcome (delivered, calling, retry, failed)",
    ["channel", "outcome"],
)
SEND_SECONDS = Histogram(
    "carewatch_notification_send_seconds", "time one channel took to take a message", ["channel"]
)
ANSWERS = Counter(
    "carewatch_notification_answers",
    "answers from people (accepted, declined, no_answer) by how they came",
    ["answer", "via"],
)
CHAINS = Counter(
    "carewatch_escalation_chains",
    "escalation chain changes (started, acknowledged, stopped, exhausted)",
    ["change"],
)
