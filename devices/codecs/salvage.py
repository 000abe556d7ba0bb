"""Alarms are salvaged, never dropped for a side field.

An `sos` or `fall` whose time, position or other fields are invalid is still a call for
help: `make_alarm` keeps the event and drops (or, for the time, replaces by the receive
time) what the model refuses, names it in the event's `salvaged` field, and returns a
`salvaged_alarm` DecodeError saying what was dropped and why, so the dead-letter topic
keeps the message's bytes. Every codec builds its alarms through here.

The position goes as a whole: a latitude without its longitude says nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from devices.errors import DecodeError, Reason, printable
from devices.events import Event, make_event

__all__ = ["Dropped", "make_alarm"]

_POSITION = ("lat", "lon")
_MAX_FLAG = 80  # the model's limit for one `salvaged` entry
# Each round drops at least one field (or the time); an alarm has only a handful.
_MAX_ROUNDS = 8


@dataclass
class Dropped:
    """What was taken out of an alarm to keep it: `salvaged` flags, and why, in order."""

    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, flag: str, why: str) -> None:
        flag = printable(flag)[:_MAX_FLAG]
        if flag not in self.flags:
            self.flags.append(flag)
            self.reasons.append(f"{flag} ({why})")

    def unknown(self, name: str, why: str) -> None:
        self.add(f"unknown_field:{name}", why)

    def invalid(self, name: str, why: str) -> None:
        self.add(f"invalid_field:{name}", why)


def make_alarm(
    protocol: str,
    *,
    device_id: str,
    kind: str,
    ts: Any,
    received_at: datetime,
    fields: dict[str, Any],
    msg_id: str | None = None,
    dropped: Dropped | None = None,
    index: int | None = None,
) -> tuple[Event, DecodeError | None]:
    """One alarm event, whatever its side fields hold, and the `salvaged_alarm` record if
    anything was dropped (`dropped` may arrive holding what the codec already left out).

    `ts=None` means no device time: the receive time stands in, as for any event. Raises
    DecodeError only if the bare alarm itself cannot be made (a bad device id)."""
    dropped = dropped or Dropped()
    fields = dict(fields)
    for _ in range(_MAX_ROUNDS):
        try:
            event = _make(protocol, device_id, kind, ts, received_at, fields, msg_id, dropped)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        else:
            return event, _record(protocol, kind, dropped, index)
        bad_ts = ts is not None and any(_part(error) == "ts" for error in errors)
        if bad_ts:
            ts = None
        if not (_strip(errors, fields, dropped) or bad_ts):
            break  # nothing left to drop that the model refuses: keep the bare alarm
    dropped.add("fields", "could not be read")
    try:
        event = _make(protocol, device_id, kind, None, received_at, {}, msg_id, dropped)
    except ValidationError as exc:
        raise DecodeError(protocol, Reason.INVALID_FIELD, f"{kind}: {exc}") from None
    return event, _record(protocol, kind, dropped, index)


def _make(
    protocol: str,
    device_id: str,
    kind: str,
    ts: Any,
    received_at: datetime,
    fields: dict[str, Any],
    msg_id: str | None,
    dropped: Dropped,
) -> Event:
    return make_event(
        device_id=device_id,
        kind=kind,
        ts=ts,
        received_at=received_at,
        source=protocol,
        fields={**fields, "salvaged": list(dropped.flags) or None},
        msg_id=msg_id,
    )


def _strip(errors: list[Any], fields: dict[str, Any], dropped: Dropped) -> bool:
    """Take out of `fields` what the model refused (noting a refused time, which the caller
    replaces); False if nothing could be taken out."""
    changed = False
    for error in errors:
        part, why = _part(error), error["msg"]
        if part == "ts":
            dropped.add("ts", f"{why}; the receive time stands in")
        elif part is None or part in _POSITION:
            # The only rule across fields of an alarm is the position's (lat with lon).
            changed |= any([fields.pop(name, None) is not None for name in _POSITION])
            dropped.add("position", f"{part or 'lat/lon'}: {why}")
        elif part in fields:
            del fields[part]
            changed = True
            if error["type"] == "extra_forbidden":
                dropped.unknown(part, "not a field of this kind")
            else:
                dropped.invalid(part, why)
    return changed


def _part(error: Any) -> str | None:
    """The field an error is about; None for the model as a whole. loc[0] is the kind."""
    loc = error["loc"][1:]
    return str(loc[0]) if loc else None


def _record(protocol: str, kind: str, dropped: Dropped, index: int | None) -> DecodeError | None:
    if not dropped.flags:
        return None
    detail = f"{kind} kept without: {'; '.join(dropped.reasons)}"
    return DecodeError(protocol, Reason.SALVAGED_ALARM, detail, index=index)
