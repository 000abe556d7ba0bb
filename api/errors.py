"""Errors raised by `api`'s stores (the routes turn them into HTTP answers).

ApiError            root of everything this package raises; the message says what was
│                   refused and why, fit to show the person who asked
├── UserExists      a user of that name exists already
├── UserNotFound    no (enabled) user has that name
└── BadUser         a user's name, role, area or password is not acceptable
"""

from __future__ import annotations

__all__ = ["ApiError", "BadUser", "UserExists", "UserNotFound"]


class ApiError(Exception):
    """Root of the exceptions raised by `api`."""


class UserExists(ApiError):
    """A user of that name exists already."""


class UserNotFound(ApiError):
    """No (enabled) user has that name."""


class BadUser(ApiError):
    """A user's name, role, area or password is not acceptable."""
