"""ChirpStack v4 uplinks.

The MQTT integration publishes each uplink event as JSON on `application/{application_id}/
device/{dev_eui}/event/up`. carewatch's device id is the DevEUI: 16 lower-case hex digits.
The envelope's `deviceInfo.devEui` must be the topic's (in any case) and its application the
topic's; `data` (base64) is the device's bytes, decoded by carewatch -- `object`, from a
device-profile codec, is ignored (one source of truth, see `devices.codecs.lorawan`).
ChirpStack leaves zero and empty fields out, so a missing `fCnt` is 0 and a missing `data`
an empty frame. The device model comes from the registry, else from the device tag `model`,
else from the device-profile name if it names a model we decode.
"""

from __future__ import annotations

import re

from devices.codecs.base import Codec, Decoded, Message
from devices.codecs.lorawan import U32, JsonFields, Uplink, decode_uplink, uplink_key
from devices.errors import DecodeError, Reason

__all__ = ["CODEC", "NAME", "decode", "device_from_topic", "topic_for"]

NAME = "chirpstack"
# v4 application ids are UUIDs.
_TOPIC = re.compile(
    r"application/(?P<app>[0-9A-Fa-f-]{1,36})/device/(?P<eui>[0-9A-Fa-f]{16})/event/up"
)


def topic_for(dev_eui: str, application_id: str) -> str:
    return f"application/{application_id}/device/{dev_eui.lower()}/event/up"


def device_from_topic(topic: str) -> str | None:
    match = _TOPIC.fullmatch(topic)
    return match["eui"].lower() if match else None


def decode(message: Message) -> Decoded:
    """The events of one ChirpStack `up` event; DecodeError is all it raises."""
    doc = JsonFields.load(NAME, message.payload)
    info = doc.must_obj("deviceInfo")
    _check_identity(info, message)
    return decode_uplink(NAME, _uplink(doc, info), message)


def _check_identity(info: JsonFields, message: Message) -> None:
    claimed = info.must_text("devEui")
    if claimed.lower() != message.device_id:
        detail = f"deviceInfo.devEui {claimed!r} published on {message.device_id!r}"
        raise DecodeError(NAME, Reason.DEVICE_MISMATCH, detail)
    topic = _TOPIC.fullmatch(message.topic)
    app = info.text("applicationId")
    if topic is not None and app is not None and app.lower() != topic["app"].lower():
        detail = f"application {app!r} published on application {topic['app']!r}'s topic"
        raise DecodeError(NAME, Reason.DEVICE_MISMATCH, detail)


def _uplink(doc: JsonFields, info: JsonFields) -> Uplink:
    if doc.has("joinServerContext"):
        # The join server kept the AppSKey: `data` is still encrypted, not the device's bytes.
        detail = "joinServerContext set: data is encrypted (ChirpStack has no AppSKey)"
        raise DecodeError(NAME, Reason.MISSING_PAYLOAD, detail)
    f_cnt = doc.uint("fCnt", U32) or 0
    heard, time_problem = doc.soft_time("time")
    tags = info.obj("tags")
    return Uplink(
        payload=doc.b64("data") or b"",
        f_port=doc.uint("fPort", 255),
        # deduplicationId is a fresh UUID per uplink; the counter restarts at every join.
        key=uplink_key(f_cnt, doc.text("deduplicationId"), heard),
        network_time=heard,
        model=tags.text("model") if tags else None,
        model_hint=info.text("deviceProfileName"),
        time_problem=time_problem,
    )


CODEC = Codec(
    name=NAME,
    subscriptions=("application/+/device/+/event/up",),
    device_from_topic=device_from_topic,
    decode=decode,
)
