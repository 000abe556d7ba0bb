"""Commands to the dynamic-security plugin converge: create what is missing, modify what is
there, and fail loudly on anything else the plugin refuses."""

from __future__ import annotations

from typing import Any

import pytest

from plumbing.dynsec import DynsecClient, DynsecRefused


class _Plugin(DynsecClient):
    """Answers as mosquitto 2.0.11's plugin does, for the names it already has."""

    def __init__(self, existing: set[str], refuse: dict[str, str] | None = None) -> None:
        super().__init__(url="mqtt://admin:x@127.0.0.1:1")  # never connects
        self.existing = existing
        self.refuse = refuse or {}
        self.sent: list[str] = []

    async def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = []
        for command in commands:
            name = command.get("username") or command.get("rolename")
            self.sent.append(f"{command['command']} {name}")
            answer: dict[str, Any] = {"command": command["command"]}
            if name in self.refuse:
                answer["error"] = self.refuse[name]
            elif command["command"] == "createClient" and name in self.existing:
                answer["error"] = "Client already exists"
            answers.append(answer)
        return answers


def _pair(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"command": "createClient", "username": name, "password": "p"},
        {"command": "modifyClient", "username": name, "password": "p"},
    )


async def test_upsert_modifies_only_what_was_there() -> None:
    plugin = _Plugin(existing={"old"})
    assert await plugin.upsert([_pair("new"), _pair("old")]) == [False, True]
    assert plugin.sent == ["createClient new", "createClient old", "modifyClient old"]


async def test_any_other_refusal_is_an_error_that_names_the_account() -> None:
    plugin = _Plugin(existing=set(), refuse={"bad": "Role not found"})
    with pytest.raises(DynsecRefused, match="createClient bad: Role not found") as refused:
        await plugin.upsert([_pair("bad")])
    assert refused.value.reason == "Role not found"
