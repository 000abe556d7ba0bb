"""What the alarm fast path takes and what it leaves to ingest's path: it never holds
more than its queue, and one device cannot fill that queue."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from devices.codecs import CODECS
from devices.codecs.native import alarm_topic_for
from devices.events import Event
from ingest.admission import Admission
from ingest.alarm_reader import AlarmReader
from ingest.directory import DeviceDirectory
from plumbing.mqtt import Received


async def _never(_: list[Event]) -> list[dict[str, Any]]:
    raise AssertionError("nothing is raised without start()")


def _reader(queue_limit: int) -> AlarmReader:
    admission = Admission(
        codecs=CODECS.values(),
        directory=DeviceDirectory(database_url="postgresql://unused/"),
        max_payload_bytes=65536,
        device_rate=10.0,
        device_burst=60.0,
        max_ahead_s=300.0,
    )
    return AlarmReader(
        mqtt_url="mqtt://127.0.0.1:1",
        client_id="unit",
        admission=admission,
        raise_alarms=_never,
        queue_limit=queue_limit,
    )


def _sos(device: str, *, retain: bool = False) -> Received:
    return Received(alarm_topic_for(device), b'{"kind":"sos"}', 1, 1, retain)


def _count(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("carewatch_alarm_fast_path_messages_total", labels) or 0.0


def test_a_full_queue_leaves_the_rest_to_ingest() -> None:
    reader = _reader(queue_limit=3)
    before = _count("queue_full")
    for n in range(5):
        reader._on_message(_sos(f"dev-{n}"), 0)
    assert reader.health()["waiting"] == 3
    assert _count("queue_full") - before == 2


def test_one_device_takes_a_burst_and_no_more() -> None:
    reader = _reader(queue_limit=100)
    before = _count("device_over_allowance")
    for _ in range(20):
        reader._on_message(_sos("flooder"), 0)
    reader._on_message(_sos("neighbour"), 0)
    assert reader.health()["waiting"] == 6  # five of the flooder's, the neighbour's
    assert _count("device_over_allowance") - before == 15


def test_retained_and_unroutable_messages_are_not_taken() -> None:
    reader = _reader(queue_limit=100)
    reader._on_message(_sos("old", retain=True), 0)
    reader._on_message(Received("not/a/device/topic", b"{}", 1, 1, False), 0)
    assert reader.health()["waiting"] == 0
