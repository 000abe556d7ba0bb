"""Ingest's work queue: messages that may carry an alarm first, each class in order."""

from __future__ import annotations

import asyncio

from devices.codecs import CODECS
from ingest.work_queue import WorkQueue


async def test_urgent_items_overtake_waiting_ones_and_each_class_keeps_its_order() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for item in ("hb-1", "hb-2"):
        queue.put(item, urgent=False)
    queue.put("fall", urgent=True)
    queue.put("hb-3", urgent=False)
    queue.put("cancel", urgent=True)
    got = [await queue.get() for _ in range(5)]
    assert got == ["fall", "cancel", "hb-1", "hb-2", "hb-3"] and len(queue) == 0


async def test_a_waiting_consumer_wakes_for_a_new_item() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put("sos", urgent=True)
    assert await asyncio.wait_for(waiting, 1) == "sos"


def test_codecs_spot_payloads_that_may_carry_an_alarm() -> None:
    native, watch = CODECS["native"].urgent, CODECS["watch"].urgent
    assert native is not None and watch is not None
    assert native(b'{"kind": "sos"}') and native(b'[{"kind":"battery"},{"kind":"fall"}]')
    assert not native(b'{"kind": "heartbeat"}')
    assert watch(b"[3G*8800000001*0066*AL,221126,083012,V]")
    assert watch(b"[SG*8800000001*0001*000A*AL_LTE,1]")
    assert not watch(b"[3G*8800000001*0002*LK]")
