"""The replay against the real stack: Kafka, MySQL, the S3 server, the CLI and the Dagster job."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
from dagster_aws.s3 import S3Resource

from berka_assets.resources.berka_source import BerkaSourceResource, upload_folder
from berka_assets.resources.kafka import KafkaResource
from berka_assets_tests.producer.conftest import Topics, consume_all
from berka_core.config import REPO_ROOT, Settings
from berka_core.dataset.reader import TableReader
from berka_core.messages import trans_message
from berka_core.producer.encoding import encode_record_exact
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MySQLPositionStore
from berka_core.producer.replay import ReplayResult, run_replay
from berka_stack.s3 import local_s3_endpoint

pytestmark = pytest.mark.integration

SAMPLE_DIR = Path(Settings().data_dir)
SAMPLE = SAMPLE_DIR / "trans_prefix.asc"
SAMPLE_URI = SAMPLE.resolve().as_uri()


def _s3() -> S3Resource:
    return S3Resource(endpoint_url=local_s3_endpoint(), region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")


def _folder(folder: Path = SAMPLE_DIR) -> BerkaSourceResource:
    return BerkaSourceResource(kind="folder", folder=str(folder), s3=_s3())


def _options(topics: Topics, **values: object) -> ReplayOptions:
    defaults: dict[str, object] = {"pacing": "full", "start": "beginning", "log_interval_s": 1}
    return ReplayOptions(topic=topics.topic, dlq_topic=topics.dlq,
                        **(defaults | values))  # type: ignore[arg-type]


def _replay(topics: Topics, kafka: KafkaResource, positions: MySQLPositionStore,
            source: BerkaSourceResource | None = None, **values: object) -> ReplayResult:
    return run_replay(_options(topics, **values), kafka=kafka, source=source or _folder(),
                      positions=positions)


def _line_of_trans_id() -> dict[int, int]:
    reader = TableReader(SAMPLE, "trans")
    return {record["trans_id"]: reader.line_number for record in reader}


def test_n_rows_give_exactly_n_valid_messages_keyed_by_account(
    topics: Topics, kafka: KafkaResource, positions: MySQLPositionStore
) -> None:
    n = 5000
    result = _replay(topics, kafka, positions, max_messages=n)
    assert result.ok and result.delivered == n and result.encoder == "columnar"
    assert result.first_trans_id == 695247 and result.position.last_line == n + 1
    assert sum(o.high for o in result.offsets) == n

    messages = consume_all(topics.bootstrap_servers, topics.topic, n)
    validator = jsonschema.Draft202012Validator(trans_message.json_schema())
    records = [r for _, r in zip(range(n), TableReader(SAMPLE, "trans"), strict=False)]
    # Per account, messages are in file order: compare each partition's sequence per key.
    by_key: dict[bytes, list[dict]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        payload = json.loads(message.value)
        validator.validate(payload)
        assert message.key == str(payload["account_id"]).encode()
        by_key[message.key].append(payload)
    expected: dict[bytes, list[dict]] = defaultdict(list)
    for record in records:
        expected[trans_message.key(record["account_id"])].append(record)
    assert by_key.keys() == expected.keys()
    for key, payloads in by_key.items():
        for payload, record in zip(payloads, expected[key], strict=True):
            assert json.dumps(payload, separators=(",", ":")).encode() == encode_record_exact(
                record, payload["sent_at_ms"])
    sent_at = [json.loads(m.value)["sent_at_ms"] for m in messages]
    assert abs(max(sent_at) - time.time() * 1000) < 120_000


def test_stop_and_resume_has_no_gap_and_no_repeat(
    topics: Topics, kafka: KafkaResource, positions: MySQLPositionStore
) -> None:
    first = _replay(topics, kafka, positions, max_messages=1000)
    stored = positions.load(SAMPLE_URI, topics.topic)
    assert stored is not None and stored.last_line == 1001 and stored.sent == 1000
    second = _replay(topics, kafka, positions, max_messages=1000, start="resume")
    assert (first.position.last_line, second.start_line) == (1001, 1001)
    stored = positions.load(SAMPLE_URI, topics.topic)
    assert stored is not None and (stored.last_line, stored.sent) == (2001, 2000)

    messages = consume_all(topics.bootstrap_servers, topics.topic, 2000)
    line_of = _line_of_trans_id()
    lines = sorted(line_of[json.loads(m.value)["trans_id"]] for m in messages)
    assert lines == list(range(2, 2002))  # each line once: no gap, no repeat


def test_malformed_row_goes_to_the_dlq_and_is_counted(
    topics: Topics, kafka: KafkaResource, positions: MySQLPositionStore, tmp_path: Path
) -> None:
    with SAMPLE.open("rb") as handle:
        lines = [line for _, line in zip(range(201), handle, strict=False)]
    bad = b'3591421;1844;930131;"PRIJEM";"";12.6O;3754.60;"UROK";;\r\n'
    (tmp_path / "trans.asc").write_bytes(b"".join([*lines[:101], bad, *lines[101:]]))
    result = _replay(topics, kafka, positions, source=_folder(tmp_path))
    assert result.ok and result.delivered == 200 and result.rejected == 1
    assert result.position.last_line == 202 and result.position.rejected == 1

    consume_all(topics.bootstrap_servers, topics.topic, 200)
    (dead,) = consume_all(topics.bootstrap_servers, topics.dlq, 1)
    payload = json.loads(dead.value)
    assert payload["line"] == 102 and payload["raw"] == bad.decode().rstrip("\r\n")
    assert payload["file"] == (tmp_path / "trans.asc").resolve().as_uri()
    assert "amount" in payload["reason"] and "line 102" in payload["reason"]


def test_rate_pacing_keeps_the_mean_rate(
    topics: Topics, kafka: KafkaResource, positions: MySQLPositionStore
) -> None:
    rate, seconds = 200.0, 10.0
    result = _replay(topics, kafka, positions, pacing="rate", rate=rate, max_seconds=seconds,
                     seed=11)
    assert result.stop_reason == "max_seconds"
    assert result.delivered == pytest.approx(rate * seconds, rel=0.10)
    messages = consume_all(topics.bootstrap_servers, topics.topic, result.delivered)
    sent_at = sorted(json.loads(m.value)["sent_at_ms"] for m in messages)
    observed = (len(sent_at) - 1) / ((sent_at[-1] - sent_at[0]) / 1000)
    assert observed == pytest.approx(rate, rel=0.10)


def test_s3_source_gives_the_same_messages_as_the_folder(
    new_topics: Callable[[], Topics], kafka: KafkaResource, positions: MySQLPositionStore
) -> None:
    bucket = f"test-replay-{uuid.uuid4().hex[:10]}"
    client = _s3().get_client()
    upload_folder(client, SAMPLE_DIR, bucket, "raw/")
    try:
        s3_source = BerkaSourceResource(kind="s3", bucket=bucket, prefix="raw/", s3=_s3())
        pair = []
        for source in (s3_source, _folder()):
            topics = new_topics()
            result = _replay(topics, kafka, positions, source=source, max_messages=3000)
            messages = consume_all(topics.bootstrap_servers, topics.topic, 3000)
            pair.append((result, sorted(
                (m.partition, m.offset, m.key, json.loads(m.value) | {"sent_at_ms": 0})
                for m in messages
            )))
    finally:
        for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    (s3_result, from_s3), (_, from_folder) = pair
    assert s3_result.source_uri == f"s3://{bucket}/raw/trans_prefix.asc"
    assert from_s3 == from_folder  # same partitions, offsets, keys and values


def _signal_once_flowing(process: subprocess.Popen, topics: Topics, signum: int,
                         timeout: float) -> tuple[str, str]:
    """Wait until the replay's first messages are in the topic (not a fixed sleep), send
    `signum`, and return stdout and stderr; the process is killed if it is still running after
    that (a failed wait included)."""
    try:
        deadline = time.monotonic() + 120
        while _messages_in(topics) == 0:
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the replay sent nothing in 120 s"
            time.sleep(0.2)
        process.send_signal(signum)
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()


def test_sigterm_stops_the_cli_gracefully(
    topics: Topics, positions: MySQLPositionStore
) -> None:
    command = [sys.executable, "-m", "berka_assets.replay_cli", "--topic", topics.topic,
               "--dlq-topic", topics.dlq, "--pacing", "rate", "--rate", "400",
               "--start", "beginning", "--log-interval-s", "0.5", "--json", "--no-progress"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)

    stdout, stderr = _signal_once_flowing(process, topics, signal.SIGTERM, timeout=30)
    assert process.returncode == 0, stderr
    assert "stopping (signal SIGTERM)" in stderr
    report = json.loads(stdout)
    assert report["stop_reason"] == "signal SIGTERM" and report["failed"] == 0
    sent = report["sent"]
    assert sent > 0 and report["position_line"] == sent + 1
    stored = positions.load(SAMPLE_URI, topics.topic)
    assert stored is not None and (stored.last_line, stored.sent) == (sent + 1, sent)
    messages = consume_all(topics.bootstrap_servers, topics.topic, sent)
    line_of = _line_of_trans_id()
    assert sorted(line_of[json.loads(m.value)["trans_id"]] for m in messages) == list(
        range(2, sent + 2))


def test_unreachable_broker_is_a_clear_error_in_bounded_time(
    stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from berka_assets.replay_cli import main

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    code = main(["--bootstrap-servers", f"127.0.0.1:{port}", "--topic", "nowhere",
                 "--connect-timeout-s", "5", "--no-progress"])
    elapsed = time.monotonic() - started
    assert code == 1 and elapsed < 30
    error = capsys.readouterr().err
    assert f"Kafka is unreachable at 127.0.0.1:{port}" in error
    assert "berka-stack status" in error


def _job_config(topics: Topics, **values: object) -> dict:
    config = {"topic": topics.topic, "dlq_topic": topics.dlq, "start": "beginning",
              "log_interval_s": 1.0, **values}
    return {"ops": {"replay_trans": {"config": config}}}


def _output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in output.event_specific_data.metadata.items()}


def test_dagster_job_replays_and_records_metadata(
    topics: Topics, positions: MySQLPositionStore
) -> None:
    from berka_assets.jobs import s3_replay_job
    from berka_assets.resources.factory import build_resources

    result = s3_replay_job.execute_in_process(
        run_config=_job_config(topics, pacing="full", max_messages=500),
        resources=build_resources(),
    )
    assert result.success
    metadata = _output_metadata(result)
    assert (metadata["sent"], metadata["failed"], metadata["rejected"]) == (500, 0, 0)
    assert metadata["first_trans_id"] == 695247 and metadata["position_line"] == 501
    assert metadata["topic"] == topics.topic and metadata["rate_msgs_per_s"] > 0
    assert sum(p["high"] for p in metadata["offsets"].values()) == 500
    assert len(metadata["offsets"]) == 3
    # The topic is an asset: the run materialized it, with what it sent.
    (materialization,) = result.asset_materializations_for_node("replay_trans")
    assert materialization.asset_key == dg.AssetKey(["kafka", topics.topic])
    assert materialization.metadata["messages_sent"].value == 500
    assert materialization.metadata["dagster/row_count"].value == 500
    stored = positions.load(SAMPLE_URI, topics.topic)
    assert stored is not None and stored.last_line == 501
    consume_all(topics.bootstrap_servers, topics.topic, 500)


_RUN_IN_CHILD = """
import json, sys
from berka_assets.resources.factory import build_resources
from berka_assets.jobs import s3_replay_job
from berka_assets_tests.producer.test_replay_kafka import _job_config, _output_metadata
from berka_assets_tests.producer.conftest import Topics

result = s3_replay_job.execute_in_process(
    run_config=_job_config(Topics(*sys.argv[1:4]), pacing="rate", rate=300.0),
    resources=build_resources(), raise_on_error=False)
print(json.dumps({"success": result.success, **_output_metadata(result)}, default=str))
"""


def _messages_in(topics: Topics) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": topics.bootstrap_servers, "group.id": "probe"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topics.topic, p), timeout=10)[1]
                   for p in range(3))
    finally:
        consumer.close()


def test_dagster_run_termination_stops_gracefully(
    topics: Topics, positions: MySQLPositionStore
) -> None:
    # Dagster terminates a run by sending SIGINT to its run process: here, a child process
    # executing the job, signalled once its messages are flowing.
    child = subprocess.Popen(
        [sys.executable, "-c", _RUN_IN_CHILD, topics.topic, topics.dlq, topics.bootstrap_servers],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    stdout, stderr = _signal_once_flowing(child, topics, signal.SIGINT, timeout=60)
    assert child.returncode == 0, stderr[-3000:]
    metadata = json.loads(stdout.strip().splitlines()[-1])
    assert not metadata["success"]  # reported as interrupted, after a clean stop
    assert metadata["stop_reason"] == "signal SIGINT" and metadata["failed"] == 0
    sent = metadata["sent"]
    assert sent > 0
    stored = positions.load(SAMPLE_URI, topics.topic)
    assert stored is not None and (stored.last_line, stored.sent) == (sent + 1, sent)
    consume_all(topics.bootstrap_servers, topics.topic, sent)
