"""The Things Stack v3 (The Things Network, TTS Cloud / Enterprise / Open Source) uplinks.

The MQTT integration publishes each uplink as JSON on `v3/{app_id}@{tenant_id}/devices/
{device_id}/up` (`v3/{app_id}/devices/{device_id}/up` on Open Source deployments, which have
no tenant). carewatch's device id is the TTN device id. The envelope must name the same
device (and application) as the topic; `uplink_message.frm_payload` is the device's bytes,
decoded by carewatch -- `decoded_payload`, from a payload formatter, is ignored (one source
of truth, see `devices.codecs.lorawan`). TTS leaves zero and empty fields out, so a missing
`f_cnt` is 0 and a missing `frm_payload` is an empty frame. The device model comes from the
registry, else from `uplink_message.version_ids.model_id` (the LoRaWAN Device Repository).
"""

from __future__ import annotations

import re

from devices.codecs.base import Codec, Decoded, Message
from devices.codecs.lorawan import U32, JsonFields, Uplink, decode_uplink, uplink_key
from devices.errors import DecodeError, Reason

__all__ = ["CODEC", "NAME", "decode", "device_from_topic", "topic_for"]

NAME = "ttn"
# The Things Stack identifiers: lower-case letters and digits, single dashes inside, <= 36.
_ID = r"[a-z0-9](?:-?[a-z0-9])+"
_MAX_ID = 36
_TOPIC = re.compile(rf"v3/(?P<app>{_ID})(?:@(?P<tenant>{_ID}))?/devices/(?P<device>{_ID})/up")


def topic_for(device_id: str, application_id: str, tenant_id: str | None = None) -> str:
    app = f"{application_id}@{tenant_id}" if tenant_id else application_id
    return f"v3/{app}/devices/{device_id}/up"


def device_from_topic(topic: str) -> str | None:
    match = _TOPIC.fullmatch(topic)
    if match is None or len(match["device"]) > _MAX_ID:
        return None
    return match["device"]


def decode(message: Message) -> Decoded:
    """The events of one TTS uplink message; DecodeError is all it raises."""
    doc = JsonFields.load(NAME, message.payload)
    _check_identity(doc, message)
    return decode_uplink(NAME, _uplink(doc), message)


def _check_identity(doc: JsonFields, message: Message) -> None:
    ids = doc.must_obj("end_device_ids")
    claimed = ids.must_text("device_id")
    if claimed != message.device_id:
        detail = f"end_device_ids.device_id {claimed!r} published on {message.device_id!r}"
        raise DecodeError(NAME, Reason.DEVICE_MISMATCH, detail)
    topic = _TOPIC.fullmatch(message.topic)
    app_ids = ids.obj("application_ids")
    app = app_ids.text("application_id") if app_ids else None
    if topic is not None and app is not None and app != topic["app"]:
        detail = f"application {app!r} published on application {topic['app']!r}'s topic"
        raise DecodeError(NAME, Reason.DEVICE_MISMATCH, detail)


def _uplink(doc: JsonFields) -> Uplink:
    up = doc.obj("uplink_message")
    if up is None:
        # Joins, downlink events and the rest have topics of their own: this is not an uplink.
        raise DecodeError(NAME, Reason.MISSING_PAYLOAD, "no uplink_message: not an uplink")
    f_cnt = up.uint("f_cnt", U32) or 0
    # The Network Server's receive time; the Application Server's if that is missing.
    where = up if up.has("received_at") else doc
    heard, time_problem = where.soft_time("received_at")
    versions = up.obj("version_ids")
    return Uplink(
        payload=up.b64("frm_payload") or b"",
        f_port=up.uint("f_port", 255),
        # session_key_id changes at every join, which restarts f_cnt.
        key=uplink_key(f_cnt, up.text("session_key_id"), heard),
        network_time=heard,
        model=versions.text("model_id") if versions else None,
        time_problem=time_problem,
    )


CODEC = Codec(
    name=NAME,
    subscriptions=("v3/+/devices/+/up",),
    device_from_topic=device_from_topic,
    decode=decode,
)
