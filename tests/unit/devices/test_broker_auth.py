"""Device secrets hash the way mosquitto does, and each account may only its own topics."""

from __future__ import annotations

import base64

from devices.broker_auth import ROLE_TOPICS, device_account, service_account
from devices.codecs import CODECS
from devices.credentials import hash_secret, new_secret, verify_secret


def test_hash_matches_mosquitto_passwd() -> None:
    # `mosquitto_passwd -b pw alice secret` (mosquitto 2.0.11) wrote this line.
    salt = base64.b64decode("Ho4GRxRz5gZSjjb8")
    expected = (
        "$7$101$Ho4GRxRz5gZSjjb8$eDIYxc+Tzc+9rQHTMyup44/TqPtW4w+X9xejciD7tk0ZXXqrQmteBwFZUPgL"
        "RS2xZZFz9ZPRsVFrnHA/cfTCiA=="
    )
    assert hash_secret("secret", salt=salt) == expected
    assert verify_secret("secret", expected) and not verify_secret("Secret", expected)


def test_secrets_are_random_and_never_stored_plain() -> None:
    secret = new_secret()
    assert len(secret) >= 32 and secret != new_secret()
    hashed = hash_secret(secret)
    assert secret not in hashed and verify_secret(secret, hashed)
    assert not verify_secret(secret, "not a hash")


def test_a_device_account_writes_only_its_topics_under_its_own_client_id() -> None:
    account = device_account("watch-7", "native", "watch-7", "$7$h")
    assert account is not None
    assert account.rules == (
        ("write", "carewatch/v1/devices/watch-7/up"),
        ("write", "carewatch/v1/devices/watch-7/alarm"),  # sos and fall, on their own session
    )
    assert (account.client_id, account.role, account.enabled) == ("watch-7", "device:watch-7", True)
    assert device_account("8600000000001", "watch", "x") is None  # watches use the gateway


def test_service_accounts_share_their_roles_rights_and_bind_no_client_id() -> None:
    ingest = service_account("carewatch-ingest", "ingest")
    assert ingest.rules == ROLE_TOPICS["ingest"] and ingest.client_id is None
    assert ingest.role == "service:ingest"


def test_owntracks_logs_in_as_its_user() -> None:
    owntracks = CODECS["owntracks"].broker_account
    assert owntracks is not None
    user, topics = owntracks("wang.fang:phone")
    assert user == "wang.fang"
    assert "owntracks/wang.fang/phone" in topics
    account = device_account("wang.fang:phone", "owntracks", user)
    assert account is not None and account.client_id == "wang.fang:phone"
