"""The reconciliation finds a stored SOS that never raised an alert and raises it, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from alerts import event_store
from alerts.reconcile import reconcile
from devices.events import Event, make_event
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


def _reconciled(kind: str) -> float:
    return REGISTRY.get_sample_value("carewatch_reconciled_alarms_total", {"kind": kind}) or 0.0


def _alarm(device_id: str, kind: str, received_at: datetime, **fields: object) -> Event:
    return make_event(
        device_id=device_id, kind=kind, ts=received_at, received_at=received_at,
        source="native", fields=fields, msg_id=f"lost-{kind}-{fields}",
    )  # fmt: skip


async def test_a_stored_alarm_without_an_alert_is_raised_and_a_cancel_is_not(
    pipeline: Pipeline, device: str
) -> None:
    now = datetime.now(UTC)
    lost = _alarm(device, "sos", now - timedelta(minutes=2))
    cancel = _alarm(device, "fall", now - timedelta(minutes=2), cancelled=True)
    recent = _alarm(device, "fall", now - timedelta(seconds=5))  # its alert may be on its way
    async with pipeline.db.acquire() as conn:
        # What a lost alarm leaves behind: telemetry stored it, nothing raised its alert.
        await event_store.prepare_staging(conn)
        await event_store.store_rows(
            conn, [event_store.event_row(e) for e in (lost, cancel, recent)]
        )
        before = _reconciled("sos")
        changes = await reconcile(conn, now=now, grace=timedelta(seconds=60))
        again = await reconcile(conn, now=now, grace=timedelta(seconds=60))

    assert [(c["kind"], c["change"], c["event_id"]) for c in changes] == [
        ("sos", "opened", lost.event_id)
    ]
    assert again == []
    assert _reconciled("sos") == before + 1
    assert [(a["kind"], a["status"]) for a in await pipeline.alerts(device)] == [("sos", "open")]
