"""The streaming job's background trend writer: ordering, coalescing, visibility, failures.

Plain stand-ins for Spark, the tables and the ledger: this tests the thread's bookkeeping only;
the real writes are covered by test_streaming_job.py.
"""

from __future__ import annotations

import threading

import pytest

from berka_assets.spark_jobs.microbatch import MicrobatchError
from spark_streaming.trend_publisher import TrendPublisher


class FakeSpark:
    def createDataFrame(self, rows: list[tuple], schema: str) -> list[tuple]:
        return rows


class FakeTables:
    def __init__(self) -> None:
        self.written: list[list[tuple]] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.fail = False

    def write_trends(self, spark: FakeSpark, cube: list[tuple]) -> None:
        self.started.set()
        assert self.release.wait(10)
        if self.fail:
            raise RuntimeError("metastore down")
        self.written.append(cube)


class FakeLedger:
    def __init__(self) -> None:
        self.visible: list[list[str]] = []

    def mark_visible(self, batch_ids: list[str]) -> None:
        self.visible.append(list(batch_ids))


def test_the_newest_cube_is_written_and_exactly_its_batches_become_visible() -> None:
    tables, ledger = FakeTables(), FakeLedger()
    publisher = TrendPublisher(tables, ledger)  # type: ignore[arg-type]
    tables.release.clear()
    publisher.publish(FakeSpark(), [("c1",)], "b1")  # type: ignore[arg-type]
    assert tables.started.wait(5)  # b1 is being written ...
    publisher.publish(FakeSpark(), [("c2",)], "b2")  # type: ignore[arg-type]
    publisher.publish(FakeSpark(), [("c3",)], "b3")  # type: ignore[arg-type]
    tables.release.set()  # ... b2's cube is replaced by b3's, which includes it
    assert publisher.flush(10)
    assert tables.written == [[("c1",)], [("c3",)]]
    assert ledger.visible == [["b1"], ["b2", "b3"]]
    publisher.raise_if_failed()
    publisher.close()


def test_a_failed_write_is_raised_by_the_next_batch_and_nothing_is_marked() -> None:
    tables, ledger = FakeTables(), FakeLedger()
    tables.fail = True
    publisher = TrendPublisher(tables, ledger)  # type: ignore[arg-type]
    publisher.publish(FakeSpark(), [("c1",)], "b1")  # type: ignore[arg-type]
    assert publisher.flush(10)
    with pytest.raises(MicrobatchError, match="metastore down"):
        publisher.raise_if_failed()
    assert ledger.visible == []
    publisher.close()
