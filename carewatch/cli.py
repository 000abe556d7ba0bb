"""The `carewatch` command: one entry point, a subcommand per process or task."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from carewatch import (
    alerts_cli,
    decode_cli,
    dlq_cli,
    events_cli,
    registry_cli,
    rules_cli,
    scenario_cli,
    users_cli,
)
from plumbing.settings import ConfigError, Settings

__all__ = ["main"]

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
        if args.data_dir is not None:
            settings = settings.model_copy(update={"data_dir": args.data_dir})
        return int(args.run(args, settings))
    except ConfigError as exc:
        print(f"carewatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `carewatch devices list | head`
        sys.stdout = open(os.devnull, "w")
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carewatch", description=__doc__)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="embedded stack data (default ./.carewatch, CAREWATCH_DATA_DIR)",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start everything on this machine (embedded defaults)")
    up.add_argument(
        "--simulate", type=int, default=0, metavar="N", help="also run N simulated devices"
    )
    _people_option(up)
    _scale_options(up)
    up.set_defaults(run=_up)

    for name, helptext in (
        ("ingest", "MQTT -> Kafka ingest process"),
        ("alarms", "alarm fast path: SOS and fall alerts raised straight from the broker"),
        ("rules", "rules worker: events -> alerts"),
        ("telemetry", "telemetry worker: events -> PostgreSQL"),
        ("watch-gateway", "TCP gateway for 3G/4G watches -> MQTT (port CAREWATCH_GATEWAY_PORT)"),
        ("api", "the monitoring-centre HTTP API (CAREWATCH_API_HOST, CAREWATCH_API_PORT)"),
        ("notifier", "notifier: escalation chains, channels, ack links (reads alerts.v1)"),
    ):
        service = sub.add_parser(name, help=helptext)
        service.set_defaults(run=_service(name))
        if name == "rules":
            rules_cli.add_rules_actions(service)  # `carewatch rules check`, `move-state`

    alerts_cli.add_parsers(sub)
    users_cli.add_parsers(sub)

    sim = sub.add_parser("simulate", help="run simulated devices against the MQTT broker")
    sim.add_argument("--devices", type=int, default=10, help="devices, one connection each")
    sim.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events/s offered by the whole fleet (default: the devices' natural intervals)",
    )
    sim.add_argument(
        "--mix",
        default=None,
        help="device types and shares, e.g. watch:60,button:20,phone:20 (types: watch, "
        "button, phone, watch4g, lorabutton, door; default watch:70,button:30)",
    )
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    sim.add_argument(
        "--gateway",
        default=None,
        metavar="HOST:PORT",
        help="the watch gateway watch4g devices connect to (default 127.0.0.1 and "
        "CAREWATCH_GATEWAY_PORT)",
    )
    sim.add_argument("--seed", type=int, default=1)
    _people_option(sim)
    sim.add_argument(
        "--duplicates",
        type=float,
        default=None,
        help="share of messages sent twice with the same msg_id (default 0.002)",
    )
    sim.add_argument(
        "--late",
        type=float,
        default=None,
        help="share of messages held back and sent 5-60 s late (default 0.002)",
    )
    sim.add_argument(
        "--sos-mean-interval",
        type=float,
        default=180.0,
        help="mean seconds between a button's SOS presses",
    )
    sim.set_defaults(run=_simulate)

    bench = sub.add_parser("bench", help="measure throughput and SOS->alert latency end to end")
    bench.add_argument("--short", action="store_true", help="a quick check (under 3 minutes)")
    bench.add_argument("--rates", help="offered events/s per step, comma-separated")
    bench.add_argument("--step-seconds", type=float, help="seconds per step")
    bench.add_argument("--devices", type=int, help="load devices, one MQTT connection each")
    bench.add_argument("--batch", type=int, help="events per MQTT message (default 5)")
    bench.add_argument("--report", type=Path, default=Path("bench-report.json"))
    bench.add_argument("--plot", type=Path, default=Path("bench.png"))
    _scale_options(bench)
    bench.set_defaults(run=_bench)

    faults = sub.add_parser(
        "faults", help="inject each fault under load and count what was lost (the fault table)"
    )
    faults.add_argument("--only", help="faults to run, comma-separated (default: all)")
    faults.add_argument("--rate", type=int, help="events/s offered throughout (default 500)")
    faults.add_argument("--after-seconds", type=float, help="load after the fault (default 25)")
    faults.add_argument(
        "--outage-seconds", type=float, help="how long Kafka stays unreachable (default 30)"
    )
    faults.add_argument("--report", type=Path, default=Path("faults-report.json"))
    faults.set_defaults(run=_faults)

    _bench_parser(
        sub, "bench-api", "the API on a full database: the alert queue, timelines, live streams",
        _bench_api,
    )  # fmt: skip
    _bench_parser(
        sub, "bench-console",
        "the operator console in Chromium: SOS press to row on screen, a 500-alarm queue",
        _bench_console,
    )  # fmt: skip
    bench_notify = _bench_parser(
        sub, "bench-notify",
        "the notifier at a webhook receiver: SOS press to the first webhook, a mass event",
        _bench_notify,
    )  # fmt: skip
    bench_notify.add_argument("--rate", type=int, help="background events/s (default 1000)")
    bench_notify.add_argument("--presses", type=int, help="SOS presses, one a second (60)")
    bench_notify.add_argument("--mass", type=int, help="devices pressing SOS at once (1000)")
    _bench_parser(
        sub, "bench-events",
        "the day-partitioned events table: 10 M rows stored, a 24 h timeline read",
        _bench_events,
    )  # fmt: skip

    schema = sub.add_parser("schema", help="print the canonical event JSON Schema")
    schema.add_argument("--write", action="store_true", help=f"write it to {SCHEMA_PATH}")
    schema.set_defaults(run=_schema)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    registry_cli.add_parsers(sub)
    decode_cli.add_parser(sub)
    dlq_cli.add_parser(sub)
    events_cli.add_parsers(sub)
    scenario_cli.add_parser(sub)
    return parser


SCHEMA_PATH = Path("docs/schema/event.v1.json")


def _service(name: str) -> Command:
    def run(_args: argparse.Namespace, settings: Settings) -> int:
        from carewatch import processes
        from plumbing.service import run_service

        return run_service(name, settings, processes.BUILDERS[name])

    return run


def _bench_parser(sub: Any, name: str, helptext: str, run: Command) -> argparse.ArgumentParser:
    """A `bench-*` subcommand with what they all take: `--small` and `--report` (default
    `<what>-bench-report.json`)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=helptext)
    parser.add_argument("--small", action="store_true", help="a quick check (1 minute)")
    what = name.removeprefix("bench-")
    parser.add_argument("--report", type=Path, default=Path(f"{what}-bench-report.json"))
    parser.set_defaults(run=run)
    return parser


def _people_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--people",
        choices=("zh", "en", "none"),
        default="zh",
        help="give simulated devices residents with contacts, a ladder and a home zone: "
        "Chinese (zh, default) or English-style (en) names and text; none: no residents",
    )


def _scale_options(parser: argparse.ArgumentParser) -> None:
    """`--ingest N --workers N` (docs/scale-out.md); `up` checks their upper bounds."""
    parser.add_argument(
        "--ingest",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="ingest processes, sharing the MQTT subscription (default 1)",
    )
    parser.add_argument(
        "--workers",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="rules and telemetry processes each, in their consumer groups (default 1; "
        "at most the events topic's partitions)",
    )


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return int(text)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.up import run_up

    return run_up(
        settings,
        simulate=args.simulate,
        people=args.people,
        ingests=args.ingest,
        workers=args.workers,
    )


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import REGISTRY

    from carewatch.simulate import (
        FleetCollector,
        network_server_url,
        raise_fd_limit,
        register_fleet,
    )
    from plumbing.http import HealthServer
    from plumbing.logs import setup_logging
    from simulators import fleet
    from simulators.people import make_people

    setup_logging(level=settings.log_level, fmt=settings.log_format, process_name="simulate")
    try:
        mix = fleet.parse_mix(args.mix) if args.mix else None
        plan = fleet.plan_fleet(args.devices, mix)
        fleet.speed_for(plan, args.rate)
        shares = (args.duplicates or 0.0, args.late or 0.0)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError("--duplicates and --late must be >= 0 and add up to at most 1")
        gateway = _host_port(args.gateway or f"127.0.0.1:{settings.gateway_port}")
    except ValueError as exc:
        print(f"carewatch simulate: {exc}", file=sys.stderr)
        return 2
    raise_fd_limit(args.devices + 256)  # a socket per device
    quirks = {
        name: value
        for name, value in (("duplicate_share", args.duplicates), ("late_share", args.late))
        if value is not None
    }

    async def run() -> None:
        url = settings.require_mqtt_url("devices")
        formats = {device_id: fleet.FORMATS[kind] for kind, device_id in plan}
        people = (
            [] if args.people == "none" else make_people(plan, seed=args.seed, style=args.people)
        )
        secrets = await register_fleet(settings, list(formats), url, formats, people)
        lorawan = any(kind in fleet.LORAWAN_TYPES for kind, _ in plan)
        lorawan_url = await network_server_url(settings, url) if lorawan else None
        stats = fleet.FleetStats()
        REGISTRY.register(FleetCollector(stats))
        health = HealthServer(
            host=settings.metrics_host,
            port=settings.metrics_port,
            health=lambda: {"ok": True, **stats.summary()},
        )
        async with health:
            await fleet.run_fleet(
                mqtt_url=url,
                devices=args.devices,
                duration=args.duration,
                mix=mix,
                seed=args.seed,
                protocol=settings.mqtt_protocol,
                sos_mean_interval=args.sos_mean_interval,
                stop=_stop_on_signals(),
                secrets=secrets,
                rate=args.rate,
                gateway=gateway,
                lorawan_url=lorawan_url,
                stats=stats,
                **quirks,
            )
        print(orjson.dumps(stats.summary()).decode())

    asyncio.run(run())
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from carewatch.bench import BenchPlan, run_bench
    from plumbing.logs import setup_logging

    setup_logging(level="WARNING", fmt="text", process_name="bench")

    plan = BenchPlan.short() if args.short else BenchPlan.full()
    if args.rates:
        plan = replace(plan, rates=tuple(int(r) for r in args.rates.split(",")))
    for option, name in (
        ("step_seconds", "step_s"),
        ("devices", "devices"),
        ("batch", "batch"),
        ("ingest", "ingests"),
        ("workers", "workers"),
    ):
        if getattr(args, option) is not None:
            plan = replace(plan, **{name: getattr(args, option)})
    return run_bench(settings, plan, report=args.report, plot=args.plot)


def _faults(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from carewatch.faults import FaultPlan, run_faults
    from plumbing.logs import setup_logging

    # Errors only: the faults make the load's connections and pools warn by the hundred.
    setup_logging(level="ERROR", fmt="text", process_name="faults")
    plan = FaultPlan()
    if args.only:
        plan = replace(plan, faults=tuple(args.only.split(",")))
    for option, name in (
        ("rate", "rate"),
        ("after_seconds", "after_s"),
        ("outage_seconds", "outage_s"),
    ):
        if getattr(args, option) is not None:
            plan = replace(plan, **{name: getattr(args, option)})
    return run_faults(settings, plan, report=args.report)


def _bench_console(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.bench_console import ConsoleBenchPlan, run_bench_console
    from plumbing.logs import setup_logging

    plan = ConsoleBenchPlan.small() if args.small else ConsoleBenchPlan()
    setup_logging(level="WARNING", fmt="text", process_name="bench-console")
    return run_bench_console(settings, plan, report=args.report)


def _bench_notify(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from carewatch.bench_notify import NotifyBenchPlan, run_bench_notify
    from plumbing.logs import setup_logging

    plan = NotifyBenchPlan.small() if args.small else NotifyBenchPlan()
    for name in ("rate", "presses", "mass"):
        if getattr(args, name) is not None:
            plan = replace(plan, **{name: getattr(args, name)})
    setup_logging(level="WARNING", fmt="text", process_name="bench-notify")
    return run_bench_notify(settings, plan, report=args.report)


def _bench_api(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.bench_api import ApiBenchPlan, run_bench_api
    from plumbing.logs import setup_logging

    setup_logging(level="WARNING", fmt="text", process_name="bench-api")
    plan = ApiBenchPlan.small() if args.small else ApiBenchPlan()
    return run_bench_api(plan, report=args.report)


def _bench_events(args: argparse.Namespace, _settings: Settings) -> int:
    from carewatch.bench_events import EventsBenchPlan, run_bench_events
    from plumbing.logs import setup_logging

    setup_logging(level="WARNING", fmt="text", process_name="bench-events")
    plan = EventsBenchPlan.small() if args.small else EventsBenchPlan()
    return run_bench_events(plan, report=args.report)


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--gateway wants HOST:PORT, not {text!r}")
    return host, int(port)


def _stop_on_signals() -> asyncio.Event:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _schema(args: argparse.Namespace, _settings: Settings) -> int:
    from devices.schema import event_schema_json

    text = event_schema_json()
    if args.write:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(text)
        print(f"wrote {SCHEMA_PATH}")
    else:
        sys.stdout.write(text)
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from plumbing.db import connect_pool

    async def run() -> None:
        pool = await connect_pool(settings.require_database_url(), min_size=1, max_size=1)
        await pool.close()

    asyncio.run(run())
    print("schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
