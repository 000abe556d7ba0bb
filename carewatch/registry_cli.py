"""`carewatch devices ...` and `carewatch residents add`: the registry from the command line.

Every change that affects who may log in to the broker ends by changing that account on
the broker (carewatch/broker_accounts.py), confirmed, so a new device can publish at once,
and a disabled one cannot, without restarting anything.

Every change of the registry is an audit row with the actor `cli:<OS user>`, written in the
change's transaction with the API's action names and shapes (carewatch/cli_audit.py);
secrets never go into it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from api.areas import normalize_area
from api.records import resident_record
from carewatch import cli_audit, rules_cli
from carewatch.broker_accounts import (
    ADMIN_USER,
    dynsec_config,
    enable_accounts,
    put_accounts,
    sync_roles,
)
from devices import registry, residents
from devices.broker_auth import (
    ROLE_TOPICS,
    device_account,
    ensure_service_user,
    load_accounts,
    service_account,
)
from devices.codecs import CODECS
from devices.credentials import hash_secret, new_secret
from devices.errors import RegistryError
from plumbing.db import DatabaseError, run_on_connection
from plumbing.files import write_file
from plumbing.mqtt import MqttError
from plumbing.settings import Settings

__all__ = ["add_parsers"]

_CLOCK_HELP = (
    "IANA time zone the device's clock is set to, e.g. Asia/Shanghai (default UTC); "
    "used for formats whose times carry no offset (watch)"
)


def add_parsers(sub: Any) -> None:
    devices = sub.add_parser("devices", help="register, list, disable and import devices")
    actions = devices.add_subparsers(required=True, metavar="ACTION")

    add = actions.add_parser("add", help="register a device; prints its broker secret once")
    add.add_argument("device_id")
    add.add_argument("--format", required=True, choices=sorted(CODECS))
    add.add_argument("--model", help="device model, e.g. ws101 (picks a payload decoder)")
    add.add_argument("--resident", type=int, help="resident id (see `residents add`)")
    add.add_argument("--clock-tz", metavar="ZONE", help=_CLOCK_HELP)
    add.set_defaults(run=_run(_add))

    clock = actions.add_parser("set-clock", help="say which time zone a device's clock is on")
    clock.add_argument("device_id")
    clock.add_argument("zone", help=_CLOCK_HELP)
    clock.set_defaults(run=_run(_set_clock))

    listing = actions.add_parser("list", help="list registered devices")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_run(_list))

    for name, status in (("disable", "disabled"), ("enable", "active")):
        change = actions.add_parser(name, help=f"mark a device {status}")
        change.add_argument("device_id")
        change.set_defaults(run=_run(_set_status), status=status)

    rekey = actions.add_parser("rekey", help="issue a new broker secret (prints it once)")
    rekey.add_argument("device_id")
    rekey.set_defaults(run=_run(_rekey))

    imp = actions.add_parser("import", help="register devices from CSV (all or nothing)")
    imp.add_argument(
        "--csv",
        required=True,
        type=Path,
        metavar="FILE",
        help="header: device_id,format[,model][,resident_id][,clock_tz]; '-' = stdin",
    )
    imp.set_defaults(run=_run(_import))

    users = sub.add_parser("mqtt-user", help="broker accounts for services and integrations")
    u_actions = users.add_subparsers(required=True, metavar="ACTION")
    u_add = u_actions.add_parser(
        "add", help="create or re-key a service account; prints its secret once"
    )
    u_add.add_argument("username")
    u_add.add_argument("--role", required=True, choices=sorted(ROLE_TOPICS))
    u_add.set_defaults(run=_run(_add_service_user))
    export = u_actions.add_parser(
        "export",
        help="write every registry account into a dynamic-security file for a broker that is "
        "not running (setting one up, or a bulk import); prints a new admin secret once",
    )
    export.add_argument("--file", required=True, type=Path, metavar="FILE")
    export.set_defaults(run=_run(_export_accounts))
    u_actions.add_parser(
        "sync-roles",
        help="give every account on the running broker exactly the topics the registry says "
        "(after an upgrade that adds topics, e.g. the alarm topic); secrets stay as they are",
    ).set_defaults(run=_run(_sync_roles))

    residents = sub.add_parser("residents", help="the people devices belong to")
    r_actions = residents.add_subparsers(required=True, metavar="ACTION")
    r_add = r_actions.add_parser("add", help="add a resident; prints the resident id")
    r_add.add_argument("name")
    r_add.add_argument("--address")
    r_add.add_argument("--home", metavar="LAT,LON", help="home position, WGS-84 degrees")
    r_add.add_argument("--timezone", default="Asia/Shanghai")
    r_add.add_argument(
        "--area", default="", metavar="PATH", help="e.g. shanghai/xuhui/tianping (default: top)"
    )
    r_add.set_defaults(run=_run(_add_resident))
    rules_cli.add_configure_parser(r_actions)


Action = Callable[[asyncpg.Connection, argparse.Namespace, Settings], Awaitable[int]]
DeviceChange = Callable[[], Awaitable[registry.Device]]


def _run(action: Action) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        url = settings.require_database_url()
        try:
            return run_on_connection(url, lambda conn: action(conn, args, settings))
        except (RegistryError, DatabaseError, MqttError) as exc:
            print(f"carewatch: {exc}", file=sys.stderr)
            return 1

    return run


async def _add(conn: asyncpg.Connection, args: argparse.Namespace, settings: Settings) -> int:
    async with conn.transaction():
        device, secret = await registry.add_device(
            conn, device_id=args.device_id, format=args.format, model=args.model,
            resident_id=args.resident, clock_tz=args.clock_tz,
        )  # fmt: skip
        after = await cli_audit.locked_device(conn, device.device_id)
        await cli_audit.record(conn, "device.create", f"device:{device.device_id}", None, after)
    print(f"registered {device.device_id} ({device.format})")
    _print_account(device, secret)
    await _put(settings, [(device, secret)])
    return 0


async def _rekey(conn: asyncpg.Connection, args: argparse.Namespace, settings: Settings) -> int:
    async with conn.transaction():
        item = await cli_audit.locked_device(conn, args.device_id)
        secret = await registry.issue_secret(conn, args.device_id)
        # The secret is never recorded: the device as it was and is.
        await cli_audit.record(conn, "device.rekey", f"device:{args.device_id}", item, item)
    device = await registry.get_device(conn, args.device_id)
    _print_account(device, secret)
    await _put(settings, [(device, secret)])
    return 0


async def _list(conn: asyncpg.Connection, args: argparse.Namespace, _settings: Settings) -> int:
    devices = await registry.list_devices(conn)
    if args.json:
        for d in devices:
            sys.stdout.write(orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE).decode())
        return 0
    if not devices:
        print("no devices")
        return 0
    print(f"{'DEVICE':<28} {'FORMAT':<10} {'MODEL':<8} {'RESIDENT':<8} {'STATUS':<9} "
          f"{'CLOCK':<16} LAST SEEN")  # fmt: skip
    for d in devices:
        seen = d.last_seen.strftime("%Y-%m-%d %H:%M:%S") if d.last_seen else "never"
        clock = d.clock_tz or "UTC"
        print(f"{d.device_id:<28} {d.format:<10} {d.model or '-':<8} "
              f"{d.resident_id or '-':<8} {d.status:<9} {clock:<16} {seen}")  # fmt: skip
    return 0


async def _set_status(
    conn: asyncpg.Connection, args: argparse.Namespace, settings: Settings
) -> int:
    action = "device.enable" if args.status == "active" else "device.disable"
    device = await _changed(
        conn, args.device_id, action,
        lambda: registry.set_status(conn, args.device_id, args.status),
    )  # fmt: skip
    print(f"{device.device_id} is {device.status}")
    if device.mqtt_username is None:
        return 0
    try:
        done = await enable_accounts(settings, [device.mqtt_username], device.active)
    except MqttError as exc:
        raise MqttError(
            f"{device.device_id} is {device.status} in the registry, but its broker account "
            f"is not changed ({exc}); run this again once the broker is reachable"
        ) from exc
    print(done, file=sys.stderr)
    return 0


async def _set_clock(conn: asyncpg.Connection, args: argparse.Namespace, _s: Settings) -> int:
    device = await _changed(
        conn, args.device_id, "device.update",
        lambda: registry.set_clock(conn, args.device_id, args.zone),
    )  # fmt: skip
    print(f"{device.device_id}'s clock is on {device.clock_tz or 'UTC'}")
    return 0


async def _import(conn: asyncpg.Connection, args: argparse.Namespace, settings: Settings) -> int:
    text = sys.stdin.read() if str(args.csv) == "-" else args.csv.read_text()
    async with conn.transaction():
        added = await registry.import_csv(conn, text)
        for device, _secret in added:
            item = await cli_audit.locked_device(conn, device.device_id)
            await cli_audit.record(conn, "device.import", f"device:{device.device_id}", None, item)
    for device, secret in added:
        account = {"device_id": device.device_id, "format": device.format,
                   "mqtt_username": device.mqtt_username, "secret": secret}  # fmt: skip
        print(orjson.dumps(account).decode())
    print(f"imported {len(added)} devices", file=sys.stderr)
    await _put(settings, added)
    return 0


async def _add_service_user(
    conn: asyncpg.Connection, args: argparse.Namespace, settings: Settings
) -> int:
    async with conn.transaction():
        before = await _service_user(conn, args.username)
        secret = await ensure_service_user(conn, args.username, args.role)
        action = "mqtt_user.create" if before is None else "mqtt_user.rekey"
        after = {"username": args.username, "role": args.role}
        await cli_audit.record(conn, action, f"mqtt_user:{args.username}", before, after)
    topics = ", ".join(f"{access} {topic}" for access, topic in ROLE_TOPICS[args.role])
    print(f"mqtt username: {args.username}   ({args.role}: {topics})")
    print(f"mqtt secret:   {secret}   (shown once; run again to re-key)")
    account = service_account(args.username, args.role)
    print(await put_accounts(settings, [(account, secret)]), file=sys.stderr)
    return 0


async def _export_accounts(
    conn: asyncpg.Connection, args: argparse.Namespace, _settings: Settings
) -> int:
    accounts = await load_accounts(conn)
    admin = new_secret()
    config = dynsec_config(accounts, admin_hash=hash_secret(admin))
    write_file(args.file, config)  # private: it holds the secrets' hashes
    print(f"wrote {len(accounts)} accounts to {args.file}; start the broker with it")
    print(f"admin username: {ADMIN_USER}")
    print(f"admin secret:   {admin}   (shown once; CAREWATCH_MQTT_ADMIN_URL uses it)")
    return 0


async def _sync_roles(
    conn: asyncpg.Connection, _args: argparse.Namespace, settings: Settings
) -> int:
    print(await sync_roles(settings, await load_accounts(conn)))
    return 0


async def _add_resident(
    conn: asyncpg.Connection, args: argparse.Namespace, _settings: Settings
) -> int:
    home = _lat_lon(args.home) if args.home else None
    try:
        area = normalize_area(args.area)
    except ValueError as exc:
        raise RegistryError(f"--area: {exc}") from None
    async with conn.transaction():
        resident_id = await residents.add_resident(
            conn, name=args.name, address=args.address, home=home, timezone=args.timezone,
            area=area,
        )  # fmt: skip
        row = await residents.get_resident(conn, resident_id)
        if row is None:  # added just now, in this transaction
            raise RegistryError(f"resident {resident_id} vanished while being added")
        after = resident_record(row)
        await cli_audit.record(conn, "resident.create", f"resident:{resident_id}", None, after)
    print(resident_id)
    return 0


async def _changed(
    conn: asyncpg.Connection, device_id: str, action: str, change: DeviceChange
) -> registry.Device:
    """Change a device and audit it (before and after), in one transaction; a change that
    changes nothing (disabling a disabled device) is not audited."""
    async with conn.transaction():
        before = await cli_audit.locked_device(conn, device_id)
        device = await change()
        after = await cli_audit.locked_device(conn, device_id)
        if after != before:
            await cli_audit.record(conn, action, f"device:{device_id}", before, after)
    return device


async def _service_user(conn: asyncpg.Connection, username: str) -> dict[str, Any] | None:
    """A service account as the audit trail records it (no secret), or None."""
    for account in await load_accounts(conn):
        if account.username == username and account.role.startswith("service:"):
            return {"username": username, "role": account.role.removeprefix("service:")}
    return None


def _lat_lon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise RegistryError(f"--home wants LAT,LON in degrees, not {text!r}") from None
    return lat, lon


def _print_account(device: registry.Device, secret: str | None) -> None:
    if secret is None:
        print("no broker account: it reaches carewatch through a gateway or network server")
        return
    print(f"mqtt username: {device.mqtt_username}")
    print(f"mqtt secret:   {secret}   (shown once; `devices rekey` issues a new one)")


async def _put(settings: Settings, devices: list[tuple[registry.Device, str | None]]) -> None:
    """The devices' broker accounts, created or re-keyed (confirmed by the broker)."""
    accounts = []
    for device, secret in devices:
        if device.mqtt_username is not None and secret is not None:
            account = device_account(
                device.device_id, device.format, device.mqtt_username, enabled=device.active
            )
            if account is not None:
                accounts.append((account, secret))
    if not accounts:
        return
    try:
        print(await put_accounts(settings, accounts), file=sys.stderr)
    except MqttError as exc:
        raise MqttError(
            f"the registry is changed, but the broker's accounts are not ({exc}); once the "
            "broker is reachable, `carewatch devices rekey ID` puts a device's account in place"
        ) from exc
