"""What a message from a device becomes: who sent it, how big it is, then what it says.

One place for the checks every reader of device messages applies in the same way: ingest
(ingest/pipeline.py) and the alarm fast path (ingest/alarm_reader.py). A device the
registry refuses, or a payload over the size limit, becomes a reject; otherwise the codec
decodes it and the time and rate policies (ingest/policy.py) apply to what came out. An
alarm passes every policy that could hold it: a missed SOS is worse than an unchecked one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from devices.codecs import Codec, Message
from devices.errors import DecodeError
from devices.events import Event
from ingest import metrics, policy
from ingest.directory import DeviceDirectory, RegistryUnavailable
from ingest.dlq import Reject

__all__ = ["Admission", "Route"]

log = logging.getLogger(__name__)

# The codec that takes a topic and the device it names (None, None: no codec takes it).
Route = tuple[Codec | None, str | None]


class Admission:
    """The checks and the decoding, over the device directory (started by its owner)."""

    def __init__(
        self,
        *,
        codecs: Iterable[Codec],
        directory: DeviceDirectory,
        max_payload_bytes: int,
        device_rate: float,
        device_burst: float,
        max_ahead_s: float,
    ) -> None:
        self.codecs = list(codecs)
        self.directory = directory
        self.max_payload = max_payload_bytes
        self._rates = policy.RateLimiter(rate=device_rate, burst=device_burst)
        self._max_ahead = timedelta(seconds=max_ahead_s)

    def route(self, topic: str) -> Route:
        for codec in self.codecs:
            device_id = codec.device_from_topic(topic)
            if device_id is not None:
                return codec, device_id
        return None, None

    async def check_and_decode(
        self, codec: Codec, device_id: str, topic: str, payload: bytes, received_at: datetime
    ) -> tuple[list[Event], list[Reject]]:
        """Who sent it, how big it is, then what it says."""
        try:
            device = await self.directory.lookup(device_id)
            refused = policy.admit_device(device, device_id, codec.name)
        except RegistryUnavailable:
            device, refused = None, None  # cannot be checked: only its alarms pass (below)
        if refused is not None:
            return [], [refused]
        if len(payload) > self.max_payload:
            size = f"{len(payload)} bytes > {self.max_payload}"
            return [], [Reject(policy.PAYLOAD_TOO_LARGE, size, codec.name)]
        if device is None:
            return self._unverified(codec, Message(payload, topic, device_id, received_at))
        message = Message(payload, topic, device_id, received_at, device.model, device.clock_tz)
        return self._decode(codec, message)

    def _unverified(self, codec: Codec, message: Message) -> tuple[list[Event], list[Reject]]:
        """A device the registry could not be asked about: a missed SOS is worse than an
        unchecked one (the broker has checked its login), so alarms go through; everything
        else is refused to the DLQ, with its bytes."""
        events, rejects = self._decode(codec, message)
        events, unchecked = policy.only_alarms(
            events, codec.name, policy.REGISTRY_UNAVAILABLE, "from a device not yet confirmed"
        )
        if events:
            metrics.UNVERIFIED_ALARMS.inc(len(events))
            log.warning(
                "alarm let through unverified: the registry is unreachable",
                extra={"device_id": message.device_id, "kinds": [e.kind for e in events]},
            )
        return events, rejects + unchecked

    def _decode(self, codec: Codec, message: Message) -> tuple[list[Event], list[Reject]]:
        """Decode, then apply the time and rate policies to what came out."""
        try:
            decoded = codec.decode(message)
        except DecodeError as err:
            return [], [_reject(err)]
        except Exception as exc:  # a codec bug must not stop ingest or lose the message
            log.exception("codec crashed", extra={"codec": codec.name, "topic": message.topic})
            return [], [Reject(policy.INTERNAL_ERROR, repr(exc)[:500], codec.name)]
        rejects = [_reject(err) for err in decoded.rejects]
        events, late = policy.check_times(
            decoded.events, message.received_at, self._max_ahead, codec.name
        )
        rejects += late
        if events and not self._rates.allow(message.device_id):
            events, limited = policy.only_alarms(events, codec.name)
            rejects += limited
        return events, rejects


def _reject(err: DecodeError) -> Reject:
    return Reject(err.reason, err.detail, err.protocol, err.index)
