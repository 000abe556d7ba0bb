"""The broker's accounts file, written from the registry before the embedded broker starts."""

from __future__ import annotations

import orjson
import pytest

from carewatch.broker_accounts import ADMIN_USER, dynsec_config
from devices.broker_auth import device_account, service_account
from devices.credentials import hash_secret
from plumbing.dynsec import ADMIN_ROLE, DynsecError, password_fields


def test_a_registry_hash_becomes_the_plugins_password_fields_unchanged() -> None:
    hashed = hash_secret("s3cret")
    _, _, rounds, salt, digest = hashed.split("$")
    assert password_fields(hashed) == {"password": digest, "salt": salt, "iterations": 101}
    assert rounds == "101"
    with pytest.raises(DynsecError):
        password_fields("$6$not$mosquitto")


def test_the_file_holds_every_account_bound_and_disabled_as_registered() -> None:
    on = device_account("w-1", "native", "w-1", hash_secret("a"))
    off = device_account("w-2", "native", "w-2", hash_secret("b"), enabled=False)
    ingest = service_account("carewatch-ingest", "ingest", hash_secret("c"))
    assert on is not None and off is not None
    config = orjson.loads(dynsec_config([ingest, on, off], admin_hash=hash_secret("d")))

    clients = {c["username"]: c for c in config["clients"]}
    assert clients["w-1"]["clientid"] == "w-1" and "disabled" not in clients["w-1"]
    assert clients["w-2"]["disabled"] is True
    assert "clientid" not in clients["carewatch-ingest"]
    assert clients[ADMIN_USER]["roles"] == [{"rolename": ADMIN_ROLE}]
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert roles["device:w-1"] == [
        {"acltype": "publishClientSend", "topic": "carewatch/v1/devices/w-1/up", "allow": True},
        {"acltype": "publishClientSend", "topic": "carewatch/v1/devices/w-1/alarm", "allow": True},
    ]
    assert {a["acltype"] for a in roles["service:ingest"]} == {
        "subscribePattern",
        "publishClientReceive",
    }
    assert config["defaultACLAccess"]["publishClientSend"] is False
    assert "anonymousGroup" not in config


def test_dev_mode_lets_anonymous_clients_in_but_not_to_the_control_topics() -> None:
    config = orjson.loads(dynsec_config([], admin_hash=hash_secret("d"), anonymous=True))
    assert config["anonymousGroup"] == "anonymous"
    anonymous = next(r for r in config["roles"] if r["rolename"] == "anonymous")
    assert all(not acl["topic"].startswith("$") for acl in anonymous["acls"])
