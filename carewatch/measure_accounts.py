"""Measure what broker accounts cost on the embedded mosquitto (docs/broker-accounts.md).

Starts the embedded broker with EXISTING device accounts written into its
dynamic-security file (as `carewatch up` does), then imports IMPORT more over MQTT with
`BrokerAccounts.put` (as `carewatch devices import` does) while a device publishes QoS 1
messages every 20 ms, and prints: the import's time, one change (a disable) afterwards,
and how long the publishing device waited for its PUBACKs meanwhile (the broker serves no
one while the plugin rewrites its file).

    python -m carewatch.measure_accounts --existing 4000 --import 1000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from carewatch.broker_accounts import ADMIN_USER, BrokerAccounts, dynsec_config
from carewatch.embedded import EmbeddedMqtt
from devices.broker_auth import Account, device_account
from devices.codecs.native import topic_for
from devices.credentials import hash_secret, new_secret
from plumbing.mqtt import MqttClient, with_login

PROBE = "probe-device"


def _device(device_id: str, secret_hash: str | None = None) -> Account:
    account = device_account(device_id, "native", device_id, secret_hash)
    assert account is not None
    return account


async def _probe(url: str, secret: str, waits: list[float], stop: asyncio.Event) -> None:
    """A device publishing every 20 ms: how long each PUBACK took."""
    login = with_login(url, PROBE, secret)
    async with MqttClient(url=login, client_id=PROBE) as client:
        while not stop.is_set():
            sent = time.perf_counter()
            await client.publish(topic_for(PROBE), b'{"kind":"heartbeat"}')
            waits.append(time.perf_counter() - sent)
            await asyncio.sleep(0.02)


async def _measure(existing: int, count: int, data_dir: Path) -> str:
    admin, probe_secret = new_secret(), new_secret()
    accounts = [_device(f"old-{i:05d}", hash_secret(new_secret())) for i in range(existing)]
    accounts.append(_device(PROBE, hash_secret(probe_secret)))
    accounts_file = data_dir / "dynamic-security.json"
    accounts_file.write_bytes(dynsec_config(accounts, admin_hash=hash_secret(admin)))
    new = [(_device(f"new-{i:05d}"), new_secret()) for i in range(count)]

    async with EmbeddedMqtt(data_dir=data_dir, accounts_file=accounts_file) as broker:
        admin_url = with_login(broker.url, ADMIN_USER, admin)
        waits: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(broker.url, probe_secret, waits, stop))
        async with BrokerAccounts(admin_url=admin_url) as accounts_api:
            started = time.perf_counter()
            await accounts_api.put(new)
            took = time.perf_counter() - started
            stop.set()
            await probe
            started = time.perf_counter()
            await accounts_api.set_enabled([f"old-{0:05d}" if existing else PROBE], False)
            one = time.perf_counter() - started
    per = f"{took / count * 1000:.1f} ms/device" if count else "-"
    waits.sort()
    p99 = waits[int(len(waits) * 0.99)] if waits else 0.0
    return (
        f"existing {existing:>6}  import {count:>6}: {took:7.1f} s ({per}); one change after:"
        f" {one * 1000:.0f} ms; a device's PUBACK meanwhile: p99 {p99 * 1000:.0f} ms,"
        f" max {max(waits, default=0) * 1000:.0f} ms ({len(waits)} messages)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=0)
    parser.add_argument("--import", dest="count", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="broker-accounts-") as tmp:
        print(asyncio.run(_measure(args.existing, args.count, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
