"""`berka-stack up | down | restart | status | logs | watch | wipe`: the local stack on 127.0.0.1.

Start order matters: MariaDB first (it holds the metastore), Kafka, then the Spark Connect server,
which creates the Hive metastore schema alone, then the Thrift Server and the S3-compatible store.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from berka_core.config import get_settings, var_dir
from berka_stack import prereqs, process, supervisor
from berka_stack.kafka import Kafka
from berka_stack.mariadb import MariaDB
from berka_stack.s3 import S3Server
from berka_stack.service import Service, hold
from berka_stack.spark import SparkConnectServer, StreamingJob, ThriftServer


def all_services() -> list[Service]:
    """Every service of the stack, in start order."""
    return [MariaDB(), Kafka(), SparkConnectServer(), ThriftServer(), S3Server()]


def optional_services() -> list[Service]:
    """Started only when named: the continuous streaming job."""
    return [StreamingJob()]


def select(names: list[str] | None) -> list[Service]:
    services = all_services()
    if not names:
        return services
    services += optional_services()
    known = {service.name: service for service in services}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise process.StackError(
            f"Unknown service(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return [service for service in services if service.name in names]


def up(names: list[str] | None = None, *, echo=print) -> dict[str, float]:
    """Start the (selected) services and wait until each is healthy; idempotent."""
    prereqs.check_java()
    prereqs.ensure_secrets()
    for jar_set in prereqs.JAR_SETS:
        prereqs.ensure_jars(jar_set)
    prereqs.ensure_udf_jar()
    timings: dict[str, float] = {}
    for service in select(names):
        started = time.monotonic()
        echo(f"  {service.name:<14} starting on {service.address} ...")
        service.start()
        timings[service.name] = time.monotonic() - started
        echo(f"  {service.name:<14} up in {timings[service.name]:.1f} s")
    return timings


def down(names: list[str] | None = None, *, echo=print) -> None:
    """Stop in reverse order, so nothing loses a dependency while it shuts down."""
    services = select(names) if names else all_services() + optional_services()
    for service in reversed(services):
        hold(service.name)  # on purpose: `watch` leaves it stopped
        if service.stop():
            echo(f"  {service.name:<14} stopped")


# What the pipeline keeps under var/ beside the servers' data: Hive's warehouse (Delta files),
# the Dagster instance (run history, sensor cursors), the streaming job's checkpoints, reports.
LOCAL_STATE = ("warehouse", "dagster-home", "checkpoints", "reports")


def wipe_local_state(var: Path, warehouse: Path) -> list[Path]:
    """Delete the pipeline's local state; a warehouse configured outside var/ is left alone.
    Without this a wipe kept the sensor's cursor and the old Delta files (a new demo then
    failed with LOCATION_ALREADY_EXISTS, and the sensor waited above the new topic's end)."""
    removed = []
    for name in LOCAL_STATE:
        path = var / name
        if name == "warehouse" and warehouse.resolve() != path.resolve():
            continue
        if path.exists():
            shutil.rmtree(path)
            removed.append(path)
    return removed


def watch(names: list[str] | None, *, interval: float, unhealthy_after: float) -> None:
    """Supervise the named services (default: those up now) until interrupted."""
    services = select(names) if names else [
        service for service in all_services() + optional_services() if service.pid()]
    if not services:
        raise process.StackError("nothing to watch: no service is up (`berka-stack up` first)")
    # SIGTERM is how a service manager stops it; SIGINT too, even when started in the
    # background of a script, which leaves SIGINT ignored in its children.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stop_watching)
    try:
        supervisor.Supervisor(services, interval=interval, unhealthy_after=unhealthy_after,
                              echo=lambda line: print(line, flush=True)).run()
    except KeyboardInterrupt:
        pass


def _stop_watching(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def status_lines() -> list[str]:
    statuses = [service.status() for service in all_services()]
    statuses += [s.status() for s in optional_services() if s.pid() is not None]
    total = sum(status.rss_bytes for status in statuses)
    lines = [f"{'service':<14} state {'address':<22} {'memory':>11}  version"]
    lines += [status.line() for status in statuses]
    lines.append(f"{'total':<14}      {'':<22} {total / 2**20:7.0f} MiB")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="berka-stack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("up", "start services"), ("down", "stop services"),
                       ("restart", "stop then start services")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("services", nargs="*", help="default: all")
    commands.add_parser("status", help="state, address, memory and version of each service")
    logs = commands.add_parser("logs", help="last lines of a service's log")
    logs.add_argument("service")
    logs.add_argument("-n", "--lines", type=int, default=40)
    watching = commands.add_parser(
        "watch", help="restart a service that died or hangs, until Ctrl-C (as systemd would)")
    watching.add_argument("services", nargs="*", help="default: every service that is up now")
    watching.add_argument("--interval", type=float, default=2.0, help="seconds between checks")
    watching.add_argument("--unhealthy-after", type=float, default=60.0,
                       help="restart a running service that failed its health check this long")
    wipe = commands.add_parser("wipe", help="stop everything and delete all local data")
    wipe.add_argument("--yes", action="store_true", required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            up(args.services)
        elif args.command == "down":
            down(args.services)
        elif args.command == "restart":
            down(args.services)
            up(args.services)
        elif args.command == "status":
            print("\n".join(status_lines()))
            return 0 if all(s.status().up for s in all_services()) else 3
        elif args.command == "logs":
            service = select([args.service])[0]
            print(process.tail(service.log_path(), args.lines))
        elif args.command == "watch":
            watch(args.services, interval=args.interval, unhealthy_after=args.unhealthy_after)
        elif args.command == "wipe":
            down()
            for service in all_services():
                wipe_data = getattr(service, "wipe", None)
                if wipe_data:
                    wipe_data()
            warehouse = get_settings().spark.warehouse_dir.removeprefix("file://")
            for path in wipe_local_state(var_dir(), Path(warehouse)):
                print(f"  removed {path}")
            print("  all local data removed (stop `make dev` first: its instance was in "
                  "var/dagster-home)")
    except process.StackError as error:
        print(f"berka-stack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
