"""The replay job's op config: the producer's options (berka_core/producer/options.py) as a
Dagster config, so the launchpad shows every field with its description and default."""

import dagster as dg

from berka_core.producer.options import ReplayOptions


class ReplayConfig(ReplayOptions, dg.Config):
    """How to replay the trans file into Kafka."""
