"""Webhook and gateway-callback signatures: what carewatch signs, the receiver can check;
anything altered, stale, early or malformed is refused without an exception."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from notifier.channels.signing import sign, verify

SECRET = "s3cret-key"
NOW = 1_800_000_000
BODY = '{"notification_id":"n-1","alert":{"kind":"fall","resident":"王芳"}}'.encode()


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret-key", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"sha256={expected}"


def test_a_known_vector() -> None:
    # From `printf '%s' '1.{}' | openssl dgst -sha256 -hmac key`: a change to the scheme
    # that also changed the test's own hmac call above still fails here.
    assert sign("key", 1, b"{}") == (
        "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
    )


def test_what_was_signed_verifies() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, str(NOW), signature, BODY, now=NOW)
    assert verify(SECRET, str(NOW), signature.upper().replace("SHA256=", "sha256="), BODY, now=NOW)
    assert verify(SECRET, f" {NOW} ", f" {signature} ", BODY, now=NOW + 299.5)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body"),
    [
        ("other-key", NOW, BODY),  # not the shared secret
        (SECRET, NOW + 1, BODY),  # the timestamp changed
        (SECRET, NOW, BODY.replace(b"fall", b"sos")),  # the body changed
        (SECRET, NOW, BODY + b" "),
    ],
)
def test_anything_altered_is_refused(secret: str, timestamp: int, body: bytes) -> None:
    assert not verify(secret, str(timestamp), sign(SECRET, NOW, BODY), body, now=NOW)


@pytest.mark.parametrize("age_s", [301, -301, 86_400, -86_400])
def test_a_timestamp_outside_the_tolerance_is_refused(age_s: int) -> None:
    sent = NOW - age_s
    signature = sign(SECRET, sent, BODY)
    assert verify(SECRET, str(sent), signature, BODY, now=NOW, tolerance_s=abs(age_s) + 1)
    assert not verify(SECRET, str(sent), signature, BODY, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        ("", "good"),
        ("abc", "good"),
        ("1.8e9", "good"),
        ("-1800000000", "good"),
        ("１８００００００００", "good"),  # noqa: RUF001 (int() takes full-width digits; we must not)
        ("99999999999999999999999", "good"),
        (str(NOW), ""),
        (str(NOW), "sha256="),
        (str(NOW), "sha1=" + "0" * 40),
        (str(NOW), "bad"),  # the right digest without its prefix
        (str(NOW), "sha256=" + "g" * 64),
        (str(NOW), "sha256=" + "0" * 63),
        (str(NOW), "sha256=" + "é" * 64),  # not ASCII: compare_digest would raise on str
    ],
)
def test_malformed_headers_are_refused_without_raising(timestamp: str, signature: str) -> None:
    good = sign(SECRET, NOW, BODY)
    header = {"good": good, "bad": good.removeprefix("sha256=")}.get(signature, signature)
    assert not verify(SECRET, timestamp, header, BODY, now=NOW)


def test_an_empty_secret_verifies_nothing() -> None:
    assert not verify("", str(NOW), sign("", NOW, BODY), BODY, now=NOW)
