"""What a replay reports: its result, its progress, its failures and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berka_core.clients.kafka import PartitionOffsets
from berka_core.producer.position import Position


class ReplayError(Exception):
    """A replay that could not start or did not deliver everything it read."""


class BrokerUnavailableError(ReplayError):
    pass


class TopicNotFoundError(ReplayError):
    pass


class PositionMismatchError(ReplayError):
    """The stored position does not fit the source (the file changed since)."""


class DeliveryFailedError(ReplayError):
    """Messages still undelivered after all retries; `result` says which and why."""

    def __init__(self, result: ReplayResult) -> None:
        self.result = result
        super().__init__(result.failure_text())


@dataclass(frozen=True)
class DeliveryFailure:
    line: int
    trans_id: int | None  # None for a dead-letter message
    topic: str
    error: str
    attempts: int

    def __str__(self) -> str:
        what = f"trans_id {self.trans_id}" if self.trans_id is not None else "dead letter"
        return (f"line {self.line} ({what}) to {self.topic}: {self.error} after "
                f"{self.attempts} attempt(s)")


@dataclass(frozen=True)
class Progress:
    produced: int
    delivered: int
    failed: int
    rejected: int
    elapsed_s: float
    rate: float  # delivered messages/s over the last few seconds
    eta_s: float | None  # when a limit is known
    position_line: int
    final: bool = False

    def text(self) -> str:
        eta = f", ETA {_duration(self.eta_s)}" if self.eta_s is not None else ""
        extra = f", {self.failed:,} FAILED" if self.failed else ""
        extra += f", {self.rejected:,} rejected" if self.rejected else ""
        return (f"sent {self.delivered:,}{extra}, {self.rate:,.0f} msg/s, "
                f"line {self.position_line:,}, {_duration(self.elapsed_s)} elapsed{eta}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass
class ReplayResult:
    source_uri: str
    topic: str
    dlq_topic: str
    start_line: int
    position: Position
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    resent: int = 0
    first_trans_id: int | None = None
    last_trans_id: int | None = None
    elapsed_s: float = 0.0
    stop_reason: str = ""
    encoder: str = ""
    failures: list[DeliveryFailure] = field(default_factory=list)
    fatal_error: str | None = None
    offsets: list[PartitionOffsets] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.fatal_error is None

    @property
    def rate(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def interrupted(self) -> bool:
        return self.stop_reason.startswith("signal") or self.stop_reason == "stop requested"

    def summary(self) -> str:
        text = (f"{self.delivered:,} messages delivered to {self.topic} from {self.source_uri} "
                f"in {self.elapsed_s:.1f} s ({self.rate:,.0f} msg/s), lines "
                f"{self.start_line + 1:,}..{self.position.last_line:,}, {self.rejected:,} "
                f"rejected to {self.dlq_topic}, stopped by: {self.stop_reason}")
        if not self.ok:
            text += f"; {self.failure_text()}"
        return text

    def failure_text(self) -> str:
        parts = []
        if self.failed:
            parts.append(f"{self.failed:,} message(s) NOT delivered")
        if self.fatal_error:
            parts.append(f"fatal producer error: {self.fatal_error}")
        if self.failures:
            parts.append("first errors: " + "; ".join(str(f) for f in self.failures[:3]))
        parts.append(f"position kept at line {self.position.last_line:,}: a resume resends "
                     "from the first failed line")
        return ", ".join(parts)

    def metadata(self) -> dict[str, Any]:
        """Plain values for Dagster metadata and JSON reports (None values left out)."""
        values: dict[str, Any] = {
            "source": self.source_uri,
            "topic": self.topic,
            "sent": self.delivered,
            "failed": self.failed,
            "rejected": self.rejected,
            "skipped_by_date": self.skipped,
            "resent": self.resent,
            "rate_msgs_per_s": round(self.rate, 1),
            "elapsed_s": round(self.elapsed_s, 3),
            "first_trans_id": self.first_trans_id,
            "last_trans_id": self.last_trans_id,
            "start_line": self.start_line,
            "position_line": self.position.last_line,
            "stop_reason": self.stop_reason,
            "offsets": {
                str(p.partition): {"low": p.low, "high": p.high} for p in self.offsets
            },
        }
        if self.fatal_error:
            values["fatal_error"] = self.fatal_error
        if self.failures:
            values["first_failures"] = [str(f) for f in self.failures]
        return {key: value for key, value in values.items() if value is not None}
