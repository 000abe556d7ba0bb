"""The rule registry: every rule module is registered, once."""

from __future__ import annotations

import importlib
import pkgutil

import alerts.rules
from alerts.rules import RULES, Rule


def test_every_rule_module_is_registered_once() -> None:
    modules = []
    for info in pkgutil.iter_modules(alerts.rules.__path__):
        rule = getattr(importlib.import_module(f"alerts.rules.{info.name}"), "RULE", None)
        if rule is not None:
            assert isinstance(rule, Rule)
            assert rule in RULES, f"{info.name}.RULE is not in RULES"
            modules.append(info.name)
    assert len(RULES) == len(modules) == len({rule.name for rule in RULES})
