"""Passwords are kept as argon2id hashes and tokens as their SHA-256; neither is kept itself."""

from __future__ import annotations

import hashlib

from api.credentials import (
    TOKEN_PREFIX,
    hash_password,
    new_password,
    new_token,
    token_digest,
    verify_password,
)


def test_a_password_hash_verifies_only_that_password() -> None:
    password = new_password()
    hashed = hash_password(password)
    assert hashed.startswith("$argon2id$") and password not in hashed
    assert verify_password(password, hashed)
    assert not verify_password(password + "x", hashed)
    assert not verify_password(password, "not a hash")
    assert hash_password(password) != hashed  # salted


def test_tokens_are_random_and_stored_as_their_sha256() -> None:
    token = new_token()
    assert token.startswith(TOKEN_PREFIX) and len(token) == len(TOKEN_PREFIX) + 43  # 32 bytes
    assert token != new_token()
    assert token_digest(token) == hashlib.sha256(token.encode()).digest()
    assert token_digest(token) != token_digest(new_token())


def test_new_passwords_are_long_and_differ() -> None:
    passwords = {new_password() for _ in range(20)}
    assert len(passwords) == 20 and all(len(p) >= 16 for p in passwords)
