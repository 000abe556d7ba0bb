"""Stand-ins for hardware: virtual devices that speak the vendor formats over real MQTT.

- `simulators.native`: the native-format encoder, the inverse of `devices.codecs.native`.
- `simulators.behaviours`: what each kind of device says and when (pure, seeded).
- `simulators.phone`: an OwnTracks phone as a fleet device (behaviour + the app's bytes).
- `simulators.fleet`: many devices, one MQTT connection each, for demos and load tests
  (`carewatch simulate --devices N --rate R --mix watch:60,button:20,phone:20`).
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
