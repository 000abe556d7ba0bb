"""Running one long-lived process: logging, the cycle collector, signals, metrics/health,
ordered shutdown.

A command builds its components onto an `AsyncExitStack` (so they stop in reverse order)
and returns what to watch. SIGTERM or SIGINT, or any watched task ending, closes the
stack: stop taking input, drain in-flight work, flush, close connections.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from plumbing.db import DatabaseError
from plumbing.http import HealthServer
from plumbing.logs import setup_logging
from plumbing.mqtt import MqttError
from plumbing.settings import ConfigError, Settings

__all__ = ["YOUNG_THRESHOLD", "Running", "run_service"]

log = logging.getLogger(__name__)

# Failures that need a setting fixed or a service started, not a traceback.
_EXPECTED = (ConfigError, DatabaseError, MqttError, OSError)


@dataclass
class Running:
    """What a started process exposes: its health, and the tasks whose end ends it."""

    health: Callable[[], dict[str, Any]]
    watch: list[asyncio.Future[Any]] = field(default_factory=list)


Build = Callable[[Settings, AsyncExitStack], Awaitable[Running]]


def run_service(name: str, settings: Settings, build: Build) -> int:
    """Run until a signal or a crash; the exit status says which (0 or 1)."""
    setup_logging(level=settings.log_level, fmt=settings.log_format, process_name=name)
    _tune_gc()
    return asyncio.run(_serve(name, settings, build))


# Python's cycle collector at its defaults (a young collection every 700 net allocations)
# took 8-16 % of the CPU of ingest, rules and telemetry at 10,000 messages/s: a message's
# objects live for the ~100 ms it is in flight, long enough to be promoted, then scanned
# again by full collections that walked every object the imports had made (~130,000).
# Reference counting frees nearly everything here; the collector is only for cycles.
YOUNG_THRESHOLD = 50_000


def _tune_gc() -> None:
    """Once, before serving: what the imports made lives as long as the process and is
    never scanned again (gc.freeze), and young collections come 70 times less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


async def _serve(name: str, settings: Settings, build: Build) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    status = 0
    try:
        async with AsyncExitStack() as stack:
            running = await build(settings, stack)
            http = await stack.enter_async_context(
                HealthServer(
                    host=settings.metrics_host, port=settings.metrics_port, health=running.health
                )
            )
            log.info("started", extra={"service": name})
            stopper = asyncio.ensure_future(stop.wait())
            watched: list[asyncio.Future[Any]] = [stopper, http.done, *running.watch]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if stopper not in done:
                status = 1
                log.critical("a component stopped unexpectedly; shutting down")
            stopper.cancel()
            log.info("stopping", extra={"service": name})
    except Exception as exc:
        log.critical("cannot run: %s", exc, exc_info=not isinstance(exc, _EXPECTED))
        return 1
    log.info("stopped", extra={"service": name})
    return status
