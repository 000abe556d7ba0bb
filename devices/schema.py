"""The canonical event's JSON Schema, published as docs/schema/event.v1.json."""

from __future__ import annotations

import orjson

from devices.events import EVENT_ADAPTER

__all__ = ["SCHEMA_ID", "event_schema", "event_schema_json"]

SCHEMA_ID = "https://carewatch.dev/schema/event.v1.json"


def event_schema() -> dict[str, object]:
    schema = EVENT_ADAPTER.json_schema(mode="serialization")
    # The models refuse unknown fields on input, but the published contract grows by
    # extension: a consumer holding this file must accept fields added later.
    for definition in schema.get("$defs", {}).values():
        definition.pop("additionalProperties", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "carewatch canonical event v1",
        "description": "One event on carewatch.events.v1 (see DESIGN.md, Contracts).",
        **schema,
    }


def event_schema_json() -> str:
    return (
        orjson.dumps(event_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        + "\n"
    )
