"""Devices and residents as the API answers them and the audit trail records them, in one
place: the CLI audits its changes with the same shapes (carewatch/cli_audit.py), so a
change reads the same in the trail whichever way it was made. No secret is in either."""

from __future__ import annotations

from typing import Any

from devices.registry import Device

__all__ = ["device_record", "resident_record"]


def device_record(device: Device, area: str) -> dict[str, Any]:
    """A device with the area it lies in (its resident's)."""
    return {
        "device_id": device.device_id, "format": device.format, "model": device.model,
        "resident_id": device.resident_id, "area": area, "status": device.status,
        "mqtt_username": device.mqtt_username, "clock_tz": device.clock_tz,
        "last_seen": device.last_seen,
    }  # fmt: skip


def resident_record(row: dict[str, Any]) -> dict[str, Any]:
    """A resident's profile row, its home and GP as objects."""
    out = {k: v for k, v in row.items() if k not in ("home_lat", "home_lon", "gp_name", "gp_phone")}
    out["home"] = (
        None if row["home_lat"] is None else {"lat": row["home_lat"], "lon": row["home_lon"]}
    )
    out["gp"] = (
        None if row["gp_name"] is None else {"name": row["gp_name"], "phone": row["gp_phone"]}
    )
    out["languages"] = list(row["languages"])
    return out
