"""`berka-replay`: replay the Berka trans file into Kafka from a shell, like s3_replay_job.

Every option of the job's config (ReplayOptions) is a flag here, generated from it, plus where
the data and the broker are (the job's berka_source and kafka resources):

    berka-replay --pacing rate --rate 500 --max-messages 10000
    berka-replay --source s3 --bucket berka --prefix raw/ --pacing historical --speedup 86400
    berka-replay --pacing full --start beginning --topic trans-test

Progress goes to stderr (a live line on a terminal, a log line every --log-interval-s);
--json prints the result, the same values as the job's metadata, on stdout.

Exit status: 0 when everything read was delivered (also after a SIGINT/SIGTERM stop, which
flushes and records the position), 1 on errors or undelivered messages (the count and the
first errors are printed), 2 on bad options.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
from typing import Any, Literal, TextIO, Union, get_args, get_origin

from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.factory import kafka_resource, mysql_resource
from berka_core.config import (
    get_settings,
    load_secrets_into_environment,
)
from berka_core.dataset.errors import BerkaError
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MySQLPositionStore
from berka_core.producer.replay import (
    DeliveryFailedError,
    Progress,
    ReplayError,
    StopRequest,
    run_replay,
    stop_on_signals,
)

PROG = "berka-replay"
SOURCE_FLAGS = ("source", "folder", "bucket", "prefix", "s3_endpoint_url", "bootstrap_servers",
                "progress", "json")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _field_default(info: Any) -> Any:
    if info.default_factory is not None:
        return info.default_factory()
    return info.default


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per ReplayOptions field: --max-messages for max_messages, and so on."""
    group = parser.add_argument_group("replay options (the job's op config)")
    for name, info in ReplayOptions.model_fields.items():
        annotation = info.annotation
        if get_origin(annotation) in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        default = _field_default(info)
        help_text = info.description or ""
        if default not in (None, {}):
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if get_origin(annotation) is Literal:
            kwargs["choices"] = get_args(annotation)
        elif annotation is dict or get_origin(annotation) is dict:
            kwargs.update(action="append", type=_key_value, metavar="KEY=VALUE")
        elif annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = annotation
            kwargs["metavar"] = name.upper()
        group.add_argument("--" + name.replace("_", "-"), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Replay the Berka transactions into Kafka at a simulated live pace.",
    )
    settings, s3 = get_settings(), get_settings().s3
    where = parser.add_argument_group("source and broker (the job's resources)")
    where.add_argument("--source", choices=("folder", "s3"), default=s3.source_kind,
                       help="read the trans file from a folder or an S3 bucket (default: "
                       "%(default)s)")
    where.add_argument("--folder", default=settings.data_dir,
                       help="folder source (default: %(default)s)")
    where.add_argument("--bucket", default=s3.bucket, help="S3 bucket (default: %(default)s)")
    where.add_argument("--prefix", default=s3.prefix, help="S3 key prefix (default: %(default)s)")
    where.add_argument("--s3-endpoint-url", default=s3.endpoint_url or None,
                       help="S3-compatible endpoint (default: BERKA_S3_ENDPOINT_URL, else AWS)")
    where.add_argument("--bootstrap-servers", default=get_settings().kafka.bootstrap_servers,
                       help="Kafka bootstrap servers (default: %(default)s)")
    where.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="live progress line on stderr (default: when stderr is a terminal)")
    where.add_argument("--json", action="store_true",
                       help="print the result (the job's metadata) as JSON on stdout")
    add_config_arguments(parser)
    return parser


def parse_options(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[ReplayOptions, argparse.Namespace]:
    args = parser.parse_args(argv)
    values = {k: v for k, v in vars(args).items() if k not in SOURCE_FLAGS}
    if "producer_config" in values:
        values["producer_config"] = dict(values["producer_config"])
    try:
        options = ReplayOptions(**values)
        options.validate_options()
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        parser.error(str(error))
    return options, args


class _Console:
    """A live progress line on a terminal, kept below the log lines."""

    def __init__(self, stream: TextIO, live: bool) -> None:
        self.stream = stream
        self.live = live
        self.shown = False

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def progress(self, progress: Progress) -> None:
        if self.live and not progress.final:
            self.stream.write(f"\r{PROG}: {progress.text()}\033[K")
            self.stream.flush()
            self.shown = True


class _ConsoleHandler(logging.StreamHandler):
    def __init__(self, console: _Console) -> None:
        super().__init__(console.stream)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.clear()
        super().emit(record)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    options, args = parse_options(parser, argv)
    live = args.progress if args.progress is not None else sys.stderr.isatty()
    console = _Console(sys.stderr, live)
    handler = _ConsoleHandler(console)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("berka_core.producer")
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the console handler shows it; no second copy via the root logger
    try:
        return _run(options, args, console, log)
    finally:
        console.clear()
        log.removeHandler(handler)
        log.level, log.propagate = saved


def _run(options: ReplayOptions, args: argparse.Namespace, console: _Console,
         log: logging.Logger) -> int:
    load_secrets_into_environment()
    stop = StopRequest()
    try:
        settings = get_settings()
        kafka = kafka_resource(settings, resolve_secrets=True,
                               bootstrap_servers=args.bootstrap_servers)
        s3 = S3Resource(endpoint_url=args.s3_endpoint_url, region_name=settings.s3.region)
        source = BerkaSourceResource(kind=args.source, folder=args.folder, bucket=args.bucket,
                                     prefix=args.prefix, s3=s3)
        mysql = mysql_resource(settings, resolve_secrets=True)
        with stop_on_signals(stop), MySQLPositionStore.for_resource(mysql) as positions:
            result = run_replay(options, kafka=kafka, source=source, positions=positions,
                                stop=stop, on_progress=console.progress, log=log)
    except DeliveryFailedError as error:
        console.clear()
        print(f"{PROG}: FAILED: {error.result.summary()}", file=sys.stderr)
        for failure in error.result.failures:
            print(f"  {failure}", file=sys.stderr)
        if args.json:
            print(json.dumps(error.result.metadata()))
        return 1
    except (ReplayError, BerkaError, ConnectionError, RuntimeError, BotoCoreError,
            ClientError) as error:
        console.clear()
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        console.clear()
        print(f"{PROG}: interrupted before the flush ended; the position covers what was "
              "delivered", file=sys.stderr)
        return 130
    console.clear()
    if args.json:
        print(json.dumps(result.metadata()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
