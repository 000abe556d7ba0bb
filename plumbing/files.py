"""Writing files that hold secrets (or their hashes) and that another process reads."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_file"]


def write_file(path: Path, data: bytes, *, private: bool = True) -> None:
    """Write `data` whole, then rename it into place, so a reader (a broker starting, a
    command reading stack.json) never sees half a file. `private`: readable by us only
    (0600); otherwise by everyone (0644: a CA certificate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)
