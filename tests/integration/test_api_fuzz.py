"""schemathesis against the running `carewatch api` and its OpenAPI document, signed in as
an admin (every route open to it), on a database of its own and the real broker: no
generated request, valid or not, may get a server error (5xx: a broker that refused or
was away counts too) or a response that breaks the documented schema.

`/stream` is left out: an endless response is not something a fuzzer can check (its own
tests are in test_api_stream.py). The run is deterministic and bounded so CI stays short.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from carewatch.embedded import EmbeddedStack, free_port
from plumbing.db import connect_pool, migrate
from tests.integration.conftest import eventually
from tests.integration.test_api import CLI, _env, _user

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


async def test_fuzzing_the_api_finds_no_server_error_and_no_broken_schema(
    stack: EmbeddedStack, own_database: str, tmp_path: Path
) -> None:
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert schemathesis is not None, "schemathesis is in the test extra"
    # The fuzzer disables, re-keys and deletes what it finds, which must not be the other
    # tests' devices and residents.
    database_url = own_database
    pool = await connect_pool(database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        admin = await _user(pool, "admin")
    finally:
        await pool.close()
    port = free_port()
    env = _env(
        stack, tmp_path,
        CAREWATCH_DATABASE_URL=database_url,
        CAREWATCH_API_PORT=str(port),
        CAREWATCH_METRICS_PORT="0",
        # Devices it registers get real broker accounts (or refusals), as in production.
        CAREWATCH_MQTT_ADMIN_URL=stack.mqtt_urls.get("admin", ""),
    )  # fmt: skip
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log_file:
        api = await asyncio.create_subprocess_exec(
            *CLI, "api", env=env, stdout=log_file, stderr=log_file
        )
    base = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _answers(base), within=30)
        fuzz = await asyncio.create_subprocess_exec(
            schemathesis, "run", f"{base}/api/v1/openapi.json",
            "--header", f"Authorization: Bearer {admin.token}",
            "--checks", CHECKS,
            "--exclude-path", "/api/v1/stream",
            "--exclude-path", "/api/v1/logout",  # would revoke the fuzzer's own token
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", "25",
            "--generation-deterministic",
            "--workers", "2",
            "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # its cache and reports stay out of the checkout
        )  # fmt: skip
        out, _ = await asyncio.wait_for(fuzz.communicate(), 540)
    finally:
        api.send_signal(signal.SIGTERM)
        await asyncio.wait_for(api.wait(), 30)
    report = out.decode()
    logged = [orjson.loads(line) for line in log_path.read_bytes().splitlines() if line[:1] == b"{"]
    errors = [str(entry) for entry in logged if entry.get("level") == "error"]
    assert fuzz.returncode == 0, report[-6000:] + "\n".join(errors[-5:])


async def _answers(base: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            return (await client.get(f"{base}/healthz")).status_code == 200
        except httpx.TransportError:
            return False
