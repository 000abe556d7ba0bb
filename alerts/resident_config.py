"""Each device's effective rule configuration: the rule defaults
(alerts/rules/defaults.toml) merged with its resident's overrides (and time zone) from
PostgreSQL, refreshed while the worker runs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg

from alerts.rules.config import DEFAULTS_PATH, RulesConfig, effective, load_defaults
from devices.residents import device_rule_configs
from plumbing.component import Component

__all__ = ["ResidentConfigs"]

log = logging.getLogger(__name__)


class ResidentConfigs(Component):
    """`for_device(id)` -> the dict rules get as `Context.config` (one object per resident,
    reused, which the rules' config cache recognises by identity)."""

    def __init__(self, *, pool: asyncpg.Pool, defaults_path: Path | None = None,
                 refresh_s: float = 30.0) -> None:  # fmt: skip
        super().__init__(name="resident-configs")
        self._pool = pool
        self._defaults: RulesConfig = load_defaults(defaults_path or DEFAULTS_PATH)
        self._default_dict = self._defaults.model_dump(mode="json")
        self._by_device: dict[str, dict[str, Any]] = {}
        self._refresh_s = refresh_s

    def for_device(self, device_id: str) -> dict[str, Any]:
        return self._by_device.get(device_id, self._default_dict)

    async def load(self) -> None:
        async with self._pool.acquire() as conn:
            rows = await device_rule_configs(conn)
        by_resident: dict[int, dict[str, Any]] = {}
        by_device: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["resident_id"] not in by_resident:
                by_resident[row["resident_id"]] = self._resolve(row)
            by_device[row["device_id"]] = by_resident[row["resident_id"]]
        self._by_device = by_device

    def _resolve(self, row: dict[str, Any]) -> dict[str, Any]:
        overrides = dict(row["overrides"])
        resident = {"timezone": row["timezone"], **overrides.get("resident", {})}
        try:
            config = effective(self._defaults, {**overrides, "resident": resident})
        except ValueError as exc:  # stored before `rules check` existed, or edited by hand
            problem = {"resident_id": row["resident_id"], "error": str(exc)[:300]}
            log.error("bad rule overrides; using defaults", extra=problem)
            return self._default_dict
        return config.model_dump(mode="json")

    async def _open(self) -> None:
        await self.load()
        # Restarted if it crashes: a frozen configuration would keep rules on stale
        # thresholds without anyone noticing.
        self.supervise("refresh", self._refresh, restart=True)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.load()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("rule configuration refresh failed", extra={"error": repr(exc)})
