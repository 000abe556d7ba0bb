"""examples/webhook_receiver.py, what integrators copy, run as they run it and fed by the
notifier's real webhook channel: a notification is taken once however often it comes; a
wrong secret, a stale or early timestamp and a malformed signature are refused with 401,
which the channel reports as a failure not worth retrying, and a refusal does not count
as having taken the notification."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from carewatch.embedded import free_port
from notifier import render, store
from notifier.channels.signing import sign
from notifier.channels.webhook import WebhookChannel
from notifier.message import ChannelError, Message

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"
SECRET = "whsec-家人-1"  # not ASCII: both sides must hash its UTF-8


@dataclass
class Example:
    """The example receiver as a process: its URL and every line it printed so far."""

    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def printed(self, start: str) -> list[str]:
        return [line for line in self.lines if line.startswith(start)]

    async def wait_for(self, start: str, *, count: int = 1, within: float = 10.0) -> str:
        """The last line starting so, once there are `count` of them."""
        deadline = time.monotonic() + within
        while len(found := self.printed(start)) < count:
            assert self.process.poll() is None, f"the receiver exited: {self.lines}"
            assert time.monotonic() < deadline, f"no line {start!r} in {self.lines}"
            await asyncio.sleep(0.02)
        return found[-1]


@pytest.fixture
def example() -> Iterator[Example]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", str(port)],
        env={**os.environ, "WEBHOOK_SECRET": SECRET, "PYTHONIOENCODING": "utf-8"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    running = Example(url=f"http://127.0.0.1:{port}/carewatch", process=process)
    assert process.stdout is not None
    listening = threading.Event()

    def read() -> None:
        for line in process.stdout or ():
            running.lines.append(line.rstrip("\n"))
            if line.startswith("listening on"):
                listening.set()
        listening.set()  # it exited: the check below says so

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert listening.wait(10), "the receiver did not start within 10 s"
        assert running.printed("listening on"), f"the receiver did not start: {running.lines}"
        yield running
    finally:
        process.terminate()
        process.wait(10)
        reader.join(10)
        process.stdout.close()


def _notification(url: str, purpose: str = "alert") -> Message:
    """A notification as the notifier renders it, for a new alert."""
    alert_id = uuid.uuid4().int % 10**9
    nid = store.notification_id(alert_id, 0, purpose, 0, 0, 45, 0)
    alert = {
        "alert_id": alert_id, "kind": "sos", "severity": "critical",
        "status": "resolved" if purpose == "resolved" else "open",
        "summary": "SOS button pressed (no position)", "count": 1, "device_id": "pendant-0007",
        "area": "shanghai/xuhui", "opened_at": datetime.now(UTC), "resident_id": 7,
        "resident_name": "王芳", "resident_address": "徐汇区天平路 12 号", "resident_phone": None,
    }  # fmt: skip
    body = render.body_for(
        notification_id=nid, purpose=purpose, alert=alert,
        contact={"contact_id": 45, "name": "王伟"},
        ack_url=f"https://care.example.cn/ack/{nid}?e=1&s=0", language="zh-CN",
        cycle=0, round=0, step=0,
    )  # fmt: skip
    subject, text, short = render.texts(body)
    return Message(
        notification_id=nid, channel="webhook", address=url, secret=SECRET, language="zh-CN",
        subject=subject, text=text, short=short, body=body,
    )  # fmt: skip


async def _send(message: Message, *, clock: float = 0.0) -> str:
    """Through the notifier's webhook channel; `clock`: how far its clock is off."""
    channel = WebhookChannel(clock=lambda: time.time() + clock)
    try:
        return await channel.send(message)
    finally:
        await channel.close()


async def test_a_notification_is_taken_once_however_often_it_comes(example: Example) -> None:
    message = _notification(example.url)
    nid = message.notification_id
    assert await _send(message) == "delivered"
    line = await example.wait_for(f"new {nid} ")
    assert f"alert {message.body['alert']['alert_id']} critical sos 王芳 (open)" in line
    assert message.ack_url in line

    assert await _send(message) == "delivered"  # a retry: answered 2xx, not taken again
    assert await _send(message) == "delivered"
    await example.wait_for(f"duplicate {nid}", count=2)
    assert len(example.printed(f"new {nid} ")) == 1

    # The alert's resolution is another notification (another id): taken too.
    over = _notification(example.url, "resolved")
    over = replace(over, body={**over.body, "alert": message.body["alert"]})
    assert over.notification_id != nid
    assert await _send(over) == "delivered"
    assert "resolved:" in await example.wait_for(f"new {over.notification_id} ")


async def test_a_wrong_secret_is_refused_for_good_and_takes_nothing(example: Example) -> None:
    message = _notification(example.url)
    with pytest.raises(ChannelError) as refused:
        await _send(replace(message, secret="not-the-one"))
    assert refused.value.permanent  # the delivery stage gives up at once
    assert "webhook answered 401" in refused.value.reason
    await example.wait_for("refused (401)")

    assert await _send(message) == "delivered"  # the refused one was not taken
    await example.wait_for(f"new {message.notification_id} ")
    assert example.printed(f"duplicate {message.notification_id}") == []


@pytest.mark.parametrize("off_s", [-301, 301, -3600])
async def test_a_timestamp_more_than_five_minutes_off_is_refused(
    example: Example, off_s: int
) -> None:
    message = _notification(example.url)
    with pytest.raises(ChannelError) as refused:
        await _send(message, clock=off_s)
    assert refused.value.permanent and "401" in refused.value.reason

    body = orjson.dumps(message.body)
    async with httpx.AsyncClient() as http:

        async def post(at: int) -> int:
            headers = {"Content-Type": "application/json", "X-Carewatch-Timestamp": str(at),
                       "X-Carewatch-Signature": sign(SECRET, at, body)}  # fmt: skip
            return (await http.post(example.url, content=body, headers=headers)).status_code

        now = int(time.time())
        assert await post(now + off_s) == 401  # a valid signature, at the wrong time
        assert example.printed(f"new {message.notification_id} ") == []
        assert await post(now - 240) == 204  # four minutes late is still in time
    await example.wait_for(f"new {message.notification_id} ")


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, None),  # unsigned
        ("soon", "sha256=" + "0" * 64),  # a timestamp that is no number
        ("", "sha256=" + "0" * 64),
        ("1e9", "sha256=" + "0" * 64),
        ("now", "sha256=zz"),
        ("now", "sha1=" + "0" * 40),
        ("now", "sha256=" + "é" * 64),  # not ASCII: no exception, a refusal
        ("now", ""),
    ],
)
async def test_a_malformed_signature_is_refused_without_breaking_the_receiver(
    example: Example, timestamp: str | None, signature: str | None
) -> None:
    message = _notification(example.url)
    body = orjson.dumps(message.body)
    headers = {"Content-Type": "application/json"}
    if timestamp is not None:
        headers["X-Carewatch-Timestamp"] = (
            str(int(time.time())) if timestamp == "now" else timestamp
        )
    if signature is not None:
        headers["X-Carewatch-Signature"] = signature
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            example.url, content=body, headers={k: v.encode() for k, v in headers.items()}
        )
    assert answer.status_code == 401
    assert await _send(message) == "delivered"  # and it still works
    await example.wait_for(f"new {message.notification_id} ")
