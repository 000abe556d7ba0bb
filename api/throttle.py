"""Slowing down password guessing: failed sign-ins counted per user name and per client
address, in a sliding window; past the limit, sign-ins for that name or from that address
are refused (429, with when to try again) until old failures leave the window, even with
the right password, so a guesser learns nothing by going on.

Kept in the process's memory: each API process counts on its own (several replicas let an
attacker multiply the rate by their number), and a restart forgets. Enough to stop a
script hammering one account; a shared store would be the next step.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

__all__ = ["LoginThrottle", "TooManyAttempts"]

_PRUNE_ABOVE = 10_000  # keys kept before expired ones are swept


class TooManyAttempts(Exception):
    """Too many failed sign-ins for this name or from this address: try after `wait_s`."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"too many failed sign-ins: try again in {wait_s:.0f} s")
        self.wait_s = wait_s


REFUSED = Counter(
    "carewatch_api_login_refusals",
    "Sign-ins refused before the password was checked, by why",
    ["reason"],
)
FAILED = Counter("carewatch_api_login_failures", "Sign-ins with a wrong name or password")


@dataclass
class LoginThrottle:
    """At most `per_name` failures per user name and `per_address` per client address
    within `window_s` seconds."""

    per_name: int = 5
    per_address: int = 20
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def wait_s(self, name: str, address: str) -> float:
        """0 if a sign-in may be tried now, else how many seconds until it may."""
        waits = [
            self._wait(f"name:{name.lower()}", self.per_name),
            self._wait(f"address:{address}", self.per_address),
        ]
        longest = max(waits)
        if longest > 0:
            REFUSED.labels("name" if waits[0] >= waits[1] else "address").inc()
        return longest

    def failed(self, name: str, address: str) -> None:
        FAILED.inc()
        now = self.clock()
        for key in (f"name:{name.lower()}", f"address:{address}"):
            self._failures[key].append(now)
        if len(self._failures) > _PRUNE_ABOVE:  # names sprayed from many addresses
            for key in list(self._failures):
                self._wait(key, 1)

    def check(self, name: str, address: str) -> None:
        """Raise TooManyAttempts unless a sign-in may be tried now."""
        wait = self.wait_s(name, address)
        if wait > 0:
            raise TooManyAttempts(wait)

    def _wait(self, key: str, limit: int) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        horizon = self.clock() - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]  # memory stays bounded by recent failures
            return 0.0
        if len(times) < limit:
            return 0.0
        return times[len(times) - limit] - horizon
