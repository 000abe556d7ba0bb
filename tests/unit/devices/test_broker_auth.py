"""Device secrets hash the way mosquitto does, and the ACL lets each account only its own."""

from __future__ import annotations

import base64

from devices.broker_auth import ROLE_TOPICS, Account, render_acl, render_passwd
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


def test_acl_grants_each_account_only_its_topics() -> None:
    native = CODECS["native"].broker_account
    assert native is not None
    user, topics = native("watch-7")
    accounts = [
        Account("carewatch-ingest", "$7$h1", ROLE_TOPICS["ingest"], "service ingest"),
        Account(user, "$7$h2", tuple(("write", t) for t in topics), "device watch-7"),
    ]
    acl = render_acl(accounts)
    assert "user watch-7\ntopic write carewatch/v1/devices/watch-7/up" in acl
    assert "user carewatch-ingest\ntopic read #" in acl
    assert render_passwd(accounts) == "carewatch-ingest:$7$h1\nwatch-7:$7$h2\n"


def test_owntracks_logs_in_as_its_user() -> None:
    owntracks = CODECS["owntracks"].broker_account
    assert owntracks is not None
    user, topics = owntracks("wang.fang:phone")
    assert user == "wang.fang"
    assert "owntracks/wang.fang/phone" in topics
