"""Stand-ins for hardware: virtual devices that speak the vendor formats over real MQTT.

- `simulators.native`: the native-format encoder, the inverse of `devices.codecs.native`.
- `simulators.behaviours`: what each kind of device says and when (pure, seeded).
- `simulators.fleet`: many devices, one MQTT connection each, for demos and load tests.
"""

from __future__ import annotations

from simulators.behaviours import CallButton, Device, Watch
from simulators.fleet import FleetStats, plan_fleet, run_fleet
from simulators.native import Encoder, Message, encode

__all__ = [
    "CallButton",
    "Device",
    "Encoder",
    "FleetStats",
    "Message",
    "Watch",
    "encode",
    "plan_fleet",
    "run_fleet",
]
