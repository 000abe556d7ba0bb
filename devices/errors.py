"""Errors raised by `devices`.

DeviceError                 root of everything this package raises
├── DecodeError             a message (or one element of it) cannot become events;
│                           carries protocol, a machine-readable `reason` (the same
│                           string in the DLQ record and the metric label) and detail
└── RegistryError           a registry change is invalid (unknown format, bad id,
                            no such device...); the message says what to fix
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DecodeError", "DeviceError", "Reason", "RegistryError", "printable"]


def printable(text: str) -> str:
    """`text` as it can travel anywhere: JSON (a lone surrogate cannot be encoded), logs and
    PostgreSQL (which refuses NUL). Details quote what a device sent, so they may hold both."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


class Reason(StrEnum):
    """Why a payload was rejected. A closed set, so it can label metrics."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    BATCH_TOO_LARGE = "batch_too_large"
    MISSING_KIND = "missing_kind"
    UNKNOWN_KIND = "unknown_kind"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_FIELD = "invalid_field"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_MSG_ID = "invalid_msg_id"
    DEVICE_MISMATCH = "device_mismatch"
    NOT_AN_ALARM = "not_an_alarm"  # another kind on a topic that carries alarms only
    # Binary and vendor formats (watch, LoRaWAN, OwnTracks):
    INVALID_FRAME = "invalid_frame"  # framing/header broken: brackets, length, separators
    INVALID_ENCODING = "invalid_encoding"  # bad base64 / hex / text encoding
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"  # a frame type / fPort / _type we do not know
    UNKNOWN_MODEL = "unknown_model"  # no payload decoder for this device model
    TRUNCATED = "truncated"  # the bytes end inside a field
    MISSING_PAYLOAD = "missing_payload"  # an envelope without the device's bytes
    # Not a refusal: an sos/fall kept without the parts that were invalid (the event's
    # `salvaged` names them; the record keeps the bytes). An alarm is never dropped for a
    # side field.
    SALVAGED_ALARM = "salvaged_alarm"
    # A bug in a codec, caught for one element so that it cannot take its siblings along.
    INTERNAL_ERROR = "internal_error"


class DeviceError(Exception):
    """Root of the exceptions raised by `devices`."""


class DecodeError(DeviceError):
    """A payload, or the element `index` of a batch payload, cannot be decoded."""

    retriable = False

    def __init__(
        self, protocol: str, reason: Reason, detail: str, *, index: int | None = None
    ) -> None:
        detail = printable(detail)
        super().__init__(f"{protocol}: {reason}: {detail}")
        self.protocol = protocol
        self.reason = reason
        self.detail = detail
        self.index = index


class RegistryError(DeviceError):
    """A registry change cannot be made; the message says why and what to do."""
