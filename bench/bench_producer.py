"""Full-speed replay throughput, against Kafka's own Java producer benchmark on the same broker.

    python bench/bench_producer.py                  # 1,060,000 synthetic transactions
    python bench/bench_producer.py --rows 200000    # quicker
    python bench/bench_producer.py --no-java        # the replay only

1. Synthetic trans rows from berka_core.dataset.generator (scale chosen to give --rows).
2. The replay (berka_core.producer.replay.run_replay, pacing=full) reads, parses, encodes and
   produces them to a fresh 3-partition topic and waits until every message is acknowledged
   (acks=all, idempotent); msgs/s = rows / that wall time. Positions go to memory so MySQL is
   not measured (the job saves once a second, which costs nothing at this scale).
3. org.apache.kafka.tools.ProducerPerformance, with the broker's jars, at the replay's average
   message size, twice: as the issue specifies (random letters, acks=all, idempotent, Kafka's
   default batching) and with the replay's own producer settings and real message payloads
   (--payload-file), i.e. the same bytes and compression.
4. Where the replay's time goes: reading + columnar encoding alone (the full-speed path), the
   per-row reader + encoder of the paced modes, and producing pre-encoded messages with
   produce_batch alone (each single-threaded, on the same rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from common import cpu_model

from berka_core.config import get_settings

if TYPE_CHECKING:
    from berka_core.producer.options import ReplayOptions

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FULL_TRANS_ROWS = 1_056_320  # rows of the real file, ~ the generator's scale 1


def _machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {psutil.cpu_count()} cores "
            f"({cpu_model()}), Python {platform.python_version()}, load average {load}")


def _java_perf(topic: str, rows: int, record_size: int, props: dict[str, object],
               payload_file: Path | None) -> dict[str, float]:
    from berka_stack import prereqs

    classpath = str(REPO / "var" / "jars" / "kafka-broker" / "*")
    command = [prereqs.java_binary(), "-Xmx512m", "-cp", classpath,
               "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
               "--num-records", str(rows), "--throughput", "-1"]
    if payload_file is not None:
        command += ["--payload-file", str(payload_file)]
    else:
        command += ["--record-size", str(record_size)]
    command += ["--producer-props", *(f"{k}={v}" for k, v in props.items())]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    summary = [line for line in result.stdout.splitlines() if "records sent" in line]
    if result.returncode != 0 or not summary:
        raise RuntimeError(f"ProducerPerformance failed:\n{result.stdout[-2000:]}"
                           f"{result.stderr[-2000:]}")
    match = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\)", summary[-1])
    assert match, summary[-1]
    return {"msgs_per_s": float(match.group(1)), "mb_per_s": float(match.group(2)),
            "line": summary[-1].strip()}


def _breakdown(trans: Path, rows: int, options: ReplayOptions, bootstrap: str,
               partitions: int, created: list[str]) -> dict[str, int]:
    """Each stage of the replay alone, single-threaded, on the same data."""
    from berka_assets.resources.kafka import KafkaResource
    from berka_core.dataset.reader import TableReader
    from berka_core.messages.trans_message import key
    from berka_core.producer.blocks import BlockReader
    from berka_core.producer.columnar import finish_bodies
    from berka_core.producer.encoding import encode_record
    from berka_stack.kafka import ensure_topics

    print("\nwhere the replay's time goes (each stage alone, single-threaded):")
    started = time.perf_counter()
    values: list[tuple[bytes, bytes]] = []
    with trans.open("rb") as stream:
        header = stream.readline()
        for block in BlockReader(stream, header, 2, str(trans)):
            bodies = finish_bodies(block.bodies, b"1}") if not isinstance(block.bodies, list) \
                else [body + b"1}" for body in block.bodies]
            values.extend(zip(block.keys, bodies, strict=True))
            if len(values) >= rows:
                break
    columnar_rate = len(values) / (time.perf_counter() - started)
    print(f"  read + encode, full speed (columnar, per 4 MB chunk): {columnar_rate:,.0f} rows/s")
    started = time.perf_counter()
    count = 0
    for record in TableReader(trans, "trans"):
        encode_record(record, 1)
        key(record["account_id"])
        count += 1
        if count == 200_000:
            break
    row_rate = count / (time.perf_counter() - started)
    print(f"  read + encode, paced modes (reader + fast encoder, per row): {row_rate:,.0f} rows/s")
    topic = f"bench-produce-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: partitions})
    created.append(topic)
    producer = KafkaResource().producer(**options.producer_overrides())
    delivered = [0]

    def on_delivery(err: object, msg: object) -> None:
        delivered[0] += err is None

    started = time.perf_counter()
    for start in range(0, len(values), 8192):
        while len(producer) > 900_000:
            producer.poll(0.05)
        messages = [{"value": v, "key": k} for k, v in values[start:start + 8192]]
        producer.produce_batch(topic, messages, on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(60)
    produce_rate = delivered[0] / (time.perf_counter() - started)
    print(f"  produce_batch pre-encoded + acks: {produce_rate:,.0f} msgs/s "
          f"({len(values):,} messages)")
    return {"columnar_rows_per_s": round(columnar_rate), "per_row_rows_per_s": round(row_rate),
            "produce_msgs_per_s": round(produce_rate)}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_060_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-java", action="store_true")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--producer-config", action="append", default=[], metavar="KEY=VALUE",
                        help="extra replay producer properties")
    return parser.parse_args(argv)


def _generate(folder: str, wanted: int, seed: int) -> tuple[Path, int]:
    """Synthetic data in `folder`; its trans file and how many of its rows to replay."""
    from berka_core.dataset.generator import generate

    scale = wanted / FULL_TRANS_ROWS * 1.02  # the generator's count varies a little
    generated = generate(folder, scale=scale, seed=seed)
    rows = min(wanted, generated.rows["trans"])
    trans = Path(folder) / "trans.asc"
    mib = trans.stat().st_size / 2**20
    print(f"data: {generated.rows['trans']:,} synthetic trans rows ({mib:.0f} MiB) "
          f"generated in {generated.seconds:.1f} s; replaying {rows:,}")
    return trans, rows


def _sample_payloads(trans: Path, payload_file: Path) -> float:
    """Write real messages to `payload_file` for the Java tool; their average size."""
    from berka_core.dataset.reader import TableReader
    from berka_core.producer.encoding import encode_record

    sample = []
    for record in TableReader(trans, "trans"):
        sample.append(encode_record(record, int(time.time() * 1000)))
        if len(sample) == 20_000:
            break
    payload_file.write_bytes(b"\n".join(sample) + b"\n")
    return sum(map(len, sample)) / len(sample)


def _replay(folder: str, rows: int, value_size: float, options: ReplayOptions,
            extra: dict[str, str]) -> tuple[float, dict[str, object]]:
    """The replay at full speed, timed; its msgs/s and the report's replay figures."""
    from berka_assets.resources.berka_source import BerkaSourceResource
    from berka_assets.resources.kafka import KafkaResource
    from berka_assets.resources.s3 import s3_resource
    from berka_core.producer.position import MemoryPositionStore
    from berka_core.producer.replay import run_replay

    source = BerkaSourceResource(kind="folder", folder=folder, s3=s3_resource())
    started = time.perf_counter()
    cpu_started = time.process_time()
    result = run_replay(options, kafka=KafkaResource(), source=source,
                        positions=MemoryPositionStore())
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    assert result.ok and result.delivered == rows, result.summary()
    replay_rate = rows / seconds
    replay_mb = replay_rate * value_size / 1e6
    print(f"\nreplay (Python, {options.compression}, linger.ms={options.linger_ms}, "
          f"batch.size={options.batch_size}{', ' + str(extra) if extra else ''}):")
    print(f"  {rows:,} messages in {seconds:.2f} s = {replay_rate:,.0f} msgs/s, "
          f"{replay_mb:.1f} MB/s of values (avg {value_size:.0f} B), process CPU "
          f"{cpu:.1f} s ({cpu / seconds:.0%} of one core incl. librdkafka threads)")
    return replay_rate, {"rows": rows, "value_bytes": round(value_size, 1),
                         "replay_msgs_per_s": round(replay_rate),
                         "replay_mb_per_s": round(replay_mb, 2)}


def _java_comparison(bootstrap: str, partitions: int, rows: int, value_size: float,
                     options: ReplayOptions, payload_file: Path, replay_rate: float,
                     created: list[str]) -> dict[str, object]:
    """ProducerPerformance as specified and with the replay's settings; the report's ratios."""
    from berka_stack.kafka import ensure_topics

    base = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": "true"}
    tuned = base | {"compression.type": options.compression,
                    "linger.ms": options.linger_ms, "batch.size": options.batch_size}
    runs = (("as specified (random letters, default batching)", base, None),
            ("same settings and payloads as the replay", tuned, payload_file))
    print("\nKafka ProducerPerformance (Java), same broker, "
          f"--record-size {round(value_size)}:")
    report: dict[str, object] = {}
    for label, props, payloads in runs:
        topic = f"bench-java-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, {topic: partitions})
        created.append(topic)
        java = _java_perf(topic, rows, round(value_size), props, payloads)
        ratio = replay_rate / java["msgs_per_s"]
        print(f"  {label}: {java['msgs_per_s']:,.0f} msgs/s, {java['mb_per_s']:.1f} "
              f"MB/s -> replay / java = {ratio:.2f}x")
        report[f"java_{'tuned' if payloads else 'spec'}_msgs_per_s"] = round(
            java["msgs_per_s"])
        report[f"ratio_vs_java_{'tuned' if payloads else 'spec'}"] = round(ratio, 3)
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    from berka_core.producer.options import ReplayOptions
    from berka_stack.kafka import ensure_topics

    bootstrap = get_settings().kafka.bootstrap_servers
    print(f"machine: {_machine()}")
    print(f"broker: {bootstrap} (same machine), {args.partitions} partitions per topic")
    with tempfile.TemporaryDirectory(prefix="bench_producer_") as folder:
        trans, rows = _generate(folder, args.rows, args.seed)
        # Message sizes, and a payload file of real messages for the Java tool.
        payload_file = Path(folder) / "payloads.txt"
        value_size = _sample_payloads(trans, payload_file)

        name = f"bench-replay-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, {name: args.partitions, f"{name}.dlq": 1})
        created = [name, f"{name}.dlq"]
        extra = dict(item.split("=", 1) for item in args.producer_config)
        options = ReplayOptions(topic=name, dlq_topic=f"{name}.dlq", pacing="full",
                               start="beginning", max_messages=rows, log_interval_s=3600,
                               producer_config=extra)
        replay_rate, report = _replay(folder, rows, value_size, options, extra)

        if not args.no_java:
            report |= _java_comparison(bootstrap, args.partitions, rows, value_size, options,
                                       payload_file, replay_rate, created)
        if not args.no_breakdown:
            report |= _breakdown(trans, rows, options, bootstrap, args.partitions, created)
        print("\n" + json.dumps(report))
    _delete_topics(bootstrap, created)
    return 0


def _delete_topics(bootstrap: str, names: list[str]) -> None:
    """The benchmark's topics hold ~1 GB each run: remove them."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the futures resolve
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result()


if __name__ == "__main__":
    sys.exit(main())
