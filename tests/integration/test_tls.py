"""Devices reach the broker over TLS (mqtts://), trusting the embedded stack's own CA, and
their SOS is alerted like any other; a client that does not trust that CA gets nowhere."""

from __future__ import annotations

import orjson
import pytest

from devices.codecs.native import topic_for
from plumbing.mqtt import MqttClient, MqttError, parse_mqtt_url, with_login
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


async def test_a_device_connects_over_tls_and_its_sos_is_alerted(
    pipeline: Pipeline, device: str
) -> None:
    tls_url = pipeline.stack.mqtts_url
    assert tls_url is not None, "the embedded mosquitto listens for TLS"
    target = parse_mqtt_url(tls_url)
    assert target.tls and target.ca_file and target.ca_file.endswith("ca.pem")
    user, secret = pipeline.logins[device]
    url = with_login(tls_url, user, secret)
    async with MqttClient(url=url, client_id=device, protocol=pipeline.stack.mqtt_protocol) as c:
        await c.publish(topic_for(device), orjson.dumps({"kind": "sos", "msg_id": "over-tls"}))
    alert = await pipeline.wait_alert(device, "sos")
    assert alert["status"] == "open"


# paho leaves the socket of a failed TLS handshake for the garbage collector to close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_client_not_trusting_the_brokers_ca_cannot_connect(
    pipeline: Pipeline, device: str
) -> None:
    tls_url = pipeline.stack.mqtts_url
    assert tls_url is not None
    user, secret = pipeline.logins[device]
    without_ca = with_login(tls_url.split("?")[0], user, secret)  # the system's CAs only
    client = MqttClient(url=without_ca, client_id=device, protocol=pipeline.stack.mqtt_protocol)
    with pytest.raises(MqttError, match="cannot reach"):
        await client.start(timeout=5)
