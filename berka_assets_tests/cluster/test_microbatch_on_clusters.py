"""The Dagster micro-batch path on real clusters: Spark standalone (master + 2 workers) behind a
second Spark Connect server, and a 3-broker Kafka KRaft cluster (replication 3, min ISR 2).

Same code as on the local stack; only the environment differs. Each test ends with the trend
tables equal to the independent plain-Python computation, to the cent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from berka_assets.resources.kafka import KafkaResource
from berka_assets_tests import independent
from berka_assets_tests.cluster.clusters import KafkaCluster, SparkStandaloneCluster
from berka_assets_tests.cluster.support import (
    NOTES,
    SAMPLE,
    SAMPLE_TRANS,
    TIMINGS,
    ConnectOnCluster,
    connect_on_cluster,
    unique_topic,
)
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import Pipeline, as_plain, spark_session
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MemoryPositionStore
from berka_core.producer.replay import Progress, run_replay
from berka_core.producer.results import ReplayResult

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def connect(spark_cluster: SparkStandaloneCluster, cluster_env: dict[str, str],
            reference_loaded: None) -> Iterator[ConnectOnCluster]:
    """A second Spark Connect server, its application on the standalone cluster."""
    with connect_on_cluster(spark_cluster,
                            timing="connect server on cluster up, 2 executors") as connect:
        yield connect


def test_microbatches_run_on_both_workers_with_exact_trends(
    spark_cluster: SparkStandaloneCluster, kafka3: KafkaCluster, connect: ConnectOnCluster
) -> None:
    count = 20_000
    topic = unique_topic()
    kafka3.create_topic(topic, partitions=3)
    # One run per tick (the product's default): its three Kafka partitions are three tasks.
    pipeline = Pipeline(connect.settings, SAMPLE, topic=topic, max_records=count,
                        run_per="tick")
    assert pipeline.kafka.bootstrap_servers == kafka3.bootstrap_servers
    started = time.monotonic()
    assert pipeline.produce_file(SAMPLE_TRANS, limit=count) == count
    executed = pipeline.drain()
    TIMINGS["A: 20,000 rows, sensor + micro-batch runs"] = time.monotonic() - started
    spark = spark_session(connect.settings)
    try:
        assert len(executed) == 1
        assert len(executed[0].run_config["ops"]["microbatch"]["config"]["ranges"]) == 3
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, count)
        )
        assert pipeline.counts(spark) == (count, 0)
        totals = pipeline.ledger().totals(topic)
        assert (totals.consumed, totals.enriched, totals.quarantined) == (count, count, 0)

        # The work ran in the executors of both workers, not in the driver.
        placement = spark_cluster.executors_by_worker(connect.app_id)
        assert sorted(len(ids) for ids in placement.values()) == [1, 1], placement
        tasks = spark_cluster.completed_tasks_by_worker(connect.app_id)
        NOTES.append(f"A: completed tasks per worker (connect app): {tasks}")
        assert len(tasks) == 2 and all(n > 0 for n in tasks.values()), tasks
    finally:
        pipeline.drop(spark)


def test_replay_survives_kill_9_of_a_broker_and_nothing_is_lost(
    kafka3: KafkaCluster, connect: ConnectOnCluster
) -> None:
    count, rate = 20_000, 2_000.0
    topic = unique_topic()
    dlq = f"{topic}.dlq"
    kafka3.create_topic(topic, partitions=3)
    kafka3.create_topic(dlq, partitions=1)
    assert {s.isr for s in kafka3.partitions(topic).values()} == {(1, 2, 3)}
    pipeline = Pipeline(connect.settings, SAMPLE, topic=topic, max_records=count)
    kafka = pipeline.kafka
    assert kafka.bootstrap_servers == kafka3.bootstrap_servers
    victim = kafka3.partitions(topic)[0].leader  # leads partition 0, follows the others

    replay = _BackgroundReplay(
        ReplayOptions(topic=topic, dlq_topic=dlq, pacing="rate", rate=rate,
                      max_messages=count, start="beginning", seed=11, log_interval_s=2.0),
        kafka, pipeline.resources["berka_source"])
    killed = restarted = False
    spark = spark_session(connect.settings)
    try:
        replay.thread.start()
        delivered_at_kill = replay.wait_until_delivered(count // 4, timeout=60)
        killed_at = time.monotonic()
        kafka3.kill(victim)
        killed = True
        failover = kafka3.wait_for_partitions(
            topic, lambda s: s.leader not in (-1, victim) and victim not in s.isr,
            timeout=60, what=f"new leaders and an ISR without broker {victim}",
        )
        result = replay.result(timeout=240)
        pause = _longest_pause(replay.progress, killed_at)
        TIMINGS["C: leaders moved, ISR shrunk after kill -9"] = failover
        TIMINGS["C: longest pause in deliveries"] = pause
        # What the README promises: the controller fences the dead broker after its session
        # timeout (9 s by default) and the producer follows the new leaders at once.
        assert failover <= FAILOVER_BOUND_S and pause <= FAILOVER_BOUND_S, (failover, pause)
        TIMINGS["C: replay (20,000 msgs at 2,000/s)"] = result.elapsed_s
        NOTES.append(f"C: killed broker {victim} (leader of partition 0) after "
                     f"{delivered_at_kill:,} of {count:,} messages; replay: {result.summary()}")
        assert delivered_at_kill < count, "the kill must happen during the replay"
        assert result.ok and result.failed == 0 and result.rejected == 0, result.summary()
        assert result.delivered == count
        assert sum(p.high - p.low for p in kafka.partition_offsets(topic)) == count

        started = time.monotonic()
        pipeline.drain()  # with one broker of three still down
        TIMINGS["C: sensor + micro-batch runs, 2 of 3 brokers"] = time.monotonic() - started
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, count)
        )
        assert pipeline.counts(spark) == (count, 0)
        totals = pipeline.ledger().totals(topic)
        assert (totals.consumed, totals.enriched, totals.quarantined) == (count, count, 0)

        TIMINGS["C: killed broker restarted"] = kafka3.restart(victim)
        restarted = True
        TIMINGS["C: ISR back to 3 replicas"] = kafka3.wait_for_partitions(
            topic, lambda s: s.isr == (1, 2, 3), timeout=90, what="ISR of all 3 brokers"
        )
        assert kafka3.brokers() == {1, 2, 3}
    finally:
        if killed and not restarted:
            kafka3.restart(victim)  # leave a whole cluster to the next tests
        pipeline.drop(spark)



class _BackgroundReplay:
    """run_replay in a thread, its progress reports timed, its outcome kept for the test."""

    def __init__(self, options: ReplayOptions, kafka: KafkaResource, source: object) -> None:
        self.progress: list[tuple[float, Progress]] = []
        self.outcome: dict[str, object] = {}
        self.thread = threading.Thread(target=self._run, args=(options, kafka, source),
                                       name="replay", daemon=True)

    def _run(self, options: ReplayOptions, kafka: KafkaResource, source: object) -> None:
        try:
            self.outcome["result"] = run_replay(
                options, kafka=kafka, source=source, positions=MemoryPositionStore(),
                on_progress=lambda p: self.progress.append((time.monotonic(), p)),
            )
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            self.outcome["error"] = error

    def wait_until_delivered(self, messages: int, timeout: float) -> int:
        """Messages delivered when at least `messages` are."""
        deadline = time.monotonic() + timeout
        while not (self.progress and self.progress[-1][1].delivered >= messages):
            assert self.thread.is_alive() and time.monotonic() < deadline, self.outcome
            time.sleep(0.05)
        return self.progress[-1][1].delivered

    def result(self, timeout: float) -> ReplayResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the replay did not finish"
        assert "error" not in self.outcome, self.outcome.get("error")
        return self.outcome["result"]  # type: ignore[return-value]

# Kafka's broker.session.timeout.ms (9 s) plus a heartbeat and the producer's metadata refresh.
FAILOVER_BOUND_S = 15.0


def _longest_pause(progress: list[tuple[float, Progress]], after: float) -> float:
    """Longest time after `after` during which the delivered count did not grow (0.5 s steps:
    the replay reports progress twice a second)."""
    before = [report.delivered for at, report in progress if at < after]
    last, grown_at, longest = (before[-1] if before else 0), after, 0.0
    for at, report in progress:
        if at >= after and report.delivered > last:
            longest = max(longest, at - grown_at)
            last, grown_at = report.delivered, at
    return longest
