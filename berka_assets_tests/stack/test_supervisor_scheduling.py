"""The watch loop's scheduling, with plain objects standing in for services (the restarts of
real servers are tested in test_supervisor.py): one slow start holds back no other repair."""

from __future__ import annotations

import threading
import time

from berka_stack.supervisor import Supervisor


class _DeadService:
    """A service whose process is gone; its start takes until `release` is set."""

    def __init__(self, name: str, release: threading.Event | None = None) -> None:
        self.name = name
        self._release = release
        self._pid: int | None = None
        self.started = threading.Event()

    def pid(self) -> int | None:
        return self._pid

    def answers(self) -> bool:
        return self._pid is not None

    def kill(self) -> int:
        return 0

    def start(self) -> float:
        self.started.set()
        if self._release is not None:
            assert self._release.wait(30), "never released"
        self._pid = 1
        return 0.0


def test_a_slow_start_does_not_hold_back_another_restart(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))  # the hold markers
    release = threading.Event()
    slow, quick = _DeadService("streaming-job", release), _DeadService("kafka")
    watcher = Supervisor([slow, quick], echo=lambda line: None)  # type: ignore[list-item]
    try:
        assert watcher.check_once(wait=False) == []  # both restarts begun, none waited for
        assert slow.started.wait(5) and quick.started.wait(5)
        deadline = time.monotonic() + 5
        while not [r for r in watcher.recoveries if r.service == "kafka"]:
            assert time.monotonic() < deadline, "kafka's restart waited for the slow start"
            time.sleep(0.01)
        assert slow.pid() is None  # still starting
        watcher.check_once(wait=False)  # a start in flight is not begun a second time
        assert [r.service for r in watcher.recoveries] == ["kafka"]
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while len(watcher.recoveries) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert {r.service for r in watcher.recoveries} == {"kafka", "streaming-job"}
    assert all(r.seconds is not None for r in watcher.recoveries)
