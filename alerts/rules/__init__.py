"""The rules, one module per rule, and `RULES`: every rule, in the order the worker applies
them to an event. The interface they share (`Rule`, `Context`, the decisions) is in
`alerts.rules.base`, which every rule module imports; a new rule is a new module here and
one entry in `RULES`.
"""

from __future__ import annotations

from alerts.rules import alarms, battery, device_offline, geofence, inactivity, vitals, worn
from alerts.rules.base import Context, Decision, RaiseAlert, ResolveAlert, Rule, Severity

__all__ = ["RULES", "Context", "Decision", "RaiseAlert", "ResolveAlert", "Rule", "Severity"]

RULES: tuple[Rule, ...] = (
    alarms.RULE,
    geofence.RULE,
    vitals.RULE,
    inactivity.RULE,
    device_offline.RULE,
    battery.RULE,
    worn.RULE,
)
