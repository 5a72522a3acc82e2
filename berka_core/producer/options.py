"""The replay's options, defined once: the Dagster op config is made of them
(berka_assets/jobs/replay_config.py) and the `berka-replay` CLI's flags are generated from them.

Where the data comes from (folder or S3) and which Kafka cluster is used are resources
(`berka_source`, `kafka`) in the job and a few extra flags in the CLI.
"""

import datetime as dt
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from berka_core.config import get_settings
from berka_core.producer.pacing import Pacer


class ReplayOptions(BaseModel):
    """How to replay the trans file into Kafka."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(
        default_factory=lambda: get_settings().kafka.topic,
        description="Kafka topic of the transaction messages",
    )
    dlq_topic: str = Field(
        default_factory=lambda: get_settings().kafka.dlq_topic,
        description="dead-letter topic for malformed rows (JSON: file, line, raw, reason)",
    )
    pacing: Literal["rate", "historical", "full"] = Field(
        default="rate",
        description="rate: random inter-arrival times around --rate; historical: the "
        "transactions' dates sped up by --speedup; full: as fast as possible",
    )
    rate: float = Field(default=100.0, description="mean messages per second (pacing=rate)")
    jitter: Literal["exponential", "uniform", "none"] = Field(
        default="exponential",
        description="inter-arrival distribution: exponential (Poisson process), uniform "
        "(mean +- jitter_fraction) or none (constant); historical: none spreads a day's "
        "events evenly, otherwise at random instants",
    )
    jitter_fraction: float = Field(
        default=0.5, description="spread of uniform jitter, as a fraction of the mean interval"
    )
    speedup: float = Field(
        default=86400.0,
        description="historical pacing: simulated seconds per real second (86400: a day a "
        "second)",
    )
    max_messages: int | None = Field(default=None, description="stop after this many messages")
    max_seconds: float | None = Field(default=None, description="stop after this many seconds")
    date_from: str | None = Field(
        default=None, description="first transaction date to send, YYYY-MM-DD (earlier rows "
        "are skipped and count as done)"
    )
    date_to: str | None = Field(
        default=None, description="last transaction date to send, YYYY-MM-DD (the run stops at "
        "the first later row; a resume continues from it)"
    )
    start: Literal["resume", "beginning"] = Field(
        default="resume",
        description="resume after the stored position of this source and topic, or start "
        "from the first row (resets the position)",
    )
    seed: int | None = Field(default=None, description="random seed of the pacing, for repeats")
    retries: int = Field(
        default=3,
        description="resends of a message that still failed after the producer's own retries "
        "(delivery_timeout_s); then the run fails",
    )
    delivery_timeout_s: float = Field(
        default=120.0, description="librdkafka delivery.timeout.ms, in seconds"
    )
    connect_timeout_s: float = Field(
        default=15.0, description="give up when the broker answers no metadata request in "
        "this time"
    )
    log_interval_s: float = Field(default=5.0, description="seconds between progress log lines")
    compression: Literal["lz4", "zstd", "snappy", "gzip", "none"] = Field(
        default="lz4", description="producer compression.type"
    )
    linger_ms: int = Field(default=5, description="producer linger.ms")
    batch_size: int = Field(default=1_000_000, description="producer batch.size, bytes")
    producer_config: dict[str, str] = Field(
        default_factory=dict,
        description="extra librdkafka producer properties, KEY=VALUE (override the above)",
    )

    def pacer(self) -> Pacer:
        return Pacer(
            mode=self.pacing, rate=self.rate, jitter=self.jitter,
            jitter_fraction=self.jitter_fraction, speedup=self.speedup, seed=self.seed,
        )

    def date_range(self) -> tuple[dt.date | None, dt.date | None]:
        return _parse_date("date_from", self.date_from), _parse_date("date_to", self.date_to)

    def validate_options(self) -> None:
        """Raise ValueError naming the first inconsistent option."""
        self.pacer()
        date_from, date_to = self.date_range()
        if date_from and date_to and date_from > date_to:
            raise ValueError(f"date_from {date_from} is after date_to {date_to}")
        if self.max_messages is not None and self.max_messages < 0:
            raise ValueError(f"max_messages must be >= 0, got {self.max_messages}")
        if self.max_seconds is not None and not self.max_seconds >= 0:
            raise ValueError(f"max_seconds must be >= 0, got {self.max_seconds}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        for name in ("delivery_timeout_s", "connect_timeout_s", "log_interval_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if not self.topic or not self.dlq_topic:
            raise ValueError("topic and dlq_topic must not be empty")
        if self.topic == self.dlq_topic:
            raise ValueError(f"topic and dlq_topic are both {self.topic!r}")

    def producer_overrides(self) -> dict[str, object]:
        """Producer properties on top of KafkaResource.producer() (idempotent, acks=all)."""
        return {
            "compression.type": self.compression,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "delivery.timeout.ms": int(self.delivery_timeout_s * 1000),
            # Room for a full-speed burst; paced runs never come near it.
            "queue.buffering.max.messages": 1_000_000,
            **self.producer_config,
        }


def _parse_date(name: str, text: str | None) -> dt.date | None:
    if text is None or text == "":
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {text!r}") from None
