"""One child process of the embedded stack: spawn it, wait until it serves, stop it, show its log.

The embedded services (PostgreSQL, tansu, mosquitto / amqtt) and `carewatch up`'s own
worker processes all go through `ChildProcess`, so starting, readiness, shutdown and the
"why did it not start" message work the same way for every one of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["ChildProcess", "EmbeddedError", "claim_port", "free_port", "port_open"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_TAIL_LINES = 40


class EmbeddedError(Exception):
    """An embedded service did not start or stop; the message names it and quotes its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def port_open(host: str, port: int, *, connect_timeout: float = 1.0) -> bool:
    """True if something accepts a TCP connection on host:port."""
    try:
        connecting = asyncio.open_connection(host, port)
        _, writer = await asyncio.wait_for(connecting, connect_timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass  # the peer closing first is fine: it accepted, which is all we asked
    return True


async def claim_port(name: str, port: int | None) -> int:
    """`port`, or a free one if None; EmbeddedError if something already listens there.

    Checked up front because readiness is "the port accepts": a stranger holding the
    port would pass for our server.
    """
    if port is None:
        return free_port()
    if await port_open(LOOPBACK, port):
        raise EmbeddedError(f"{name}: port {port} is already in use on {LOOPBACK}")
    return port


class ChildProcess:
    """A server (or one-shot tool) run as a child process, its output in `log_path`.

    `env=None` inherits this process's environment. `user`/`group` run it as another
    system user (PostgreSQL refuses to run as root). `stop_signal` is what asks it to shut
    down cleanly; after `stop_timeout` seconds its whole process group is killed.
    """

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        group: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._user = user
        self._group = group
        self._stop_signal = stop_signal
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    async def start(self) -> None:
        if self._proc is not None:
            raise EmbeddedError(f"{self.name}: already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Appended, not truncated: the log keeps earlier runs; tail() shows only this one.
        self._log_file = self.log_path.open("ab")
        self._log_offset = self._log_file.tell()
        log.debug("starting %s: %s", self.name, " ".join(self.argv))
        try:
            # Inline, not in a thread: fork+exec takes about a millisecond, and a task
            # cancelled while a thread spawns would leave a child nobody stops.
            self._proc = subprocess.Popen(  # noqa: ASYNC220
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                user=self._user,
                group=self._group,
                # Otherwise a child run as another user keeps root's supplementary groups.
                extra_groups=[] if self._user else None,
                # Its own session: Ctrl-C in a terminal reaches only us, and we stop the
                # children in order (ingest before Kafka before PostgreSQL).
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise EmbeddedError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc

    async def restart(self) -> None:
        """Start again (after it exited, or stopping it first), logging to the same file."""
        await self.stop()
        self._proc = None
        await self.start()

    async def wait_until(
        self, ready: Callable[[], Awaitable[bool]], *, within: float = 30.0
    ) -> None:
        """Poll `ready` until it is true; EmbeddedError if the child exits or time runs out."""
        deadline = time.monotonic() + within
        while True:
            if not self.running:
                raise self.error(f"exited with code {self.returncode} while starting")
            if await ready():
                return
            if time.monotonic() > deadline:
                raise self.error(f"not ready after {within:.0f} s")
            await asyncio.sleep(0.05)

    async def wait_port(self, port: int, *, host: str = LOOPBACK, within: float = 30.0) -> None:
        """Wait until the child accepts TCP connections on host:port."""
        await self.wait_until(lambda: port_open(host, port, connect_timeout=0.5), within=within)

    async def wait_exit(self, *, within: float) -> int:
        """Wait for a one-shot child to finish; kill it and raise if it takes too long."""
        assert self._proc is not None, "start() first"
        try:
            code = await asyncio.to_thread(self._proc.wait, within)
        except subprocess.TimeoutExpired:
            await self.stop()
            raise self.error(f"did not finish within {within:.0f} s") from None
        self._close_log()
        return code

    async def stop(self) -> None:
        """Ask the child to exit, kill it if it will not; safe to call twice or before start."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal(proc, self._stop_signal, group=False)
            try:
                await asyncio.to_thread(proc.wait, self._stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop within %.0f s; killing it", self.name, self._stop_timeout
                )
                # The group, so that e.g. PostgreSQL's backends do not outlive the postmaster.
                self._signal(proc, signal.SIGKILL, group=True)
                await asyncio.to_thread(proc.wait)
            log.debug("%s stopped (exit code %s)", self.name, proc.returncode)
        self._close_log()

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines this run wrote to its log (earlier runs left out)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def error(self, what: str) -> EmbeddedError:
        """An EmbeddedError saying what went wrong, with the end of this run's log."""
        tail = self.tail() or "(empty)"
        return EmbeddedError(f"{self.name} {what}; last lines of {self.log_path}:\n{tail}")

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals, *, group: bool) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)  # start_new_session made pid the group id
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass  # exited meanwhile: that is what we wanted

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
