"""s3_replay_job: the trans file (S3 or folder) replayed into Kafka topic `trans` at a live pace.

The op config is ReplayConfig, the same options as the `berka-replay` CLI. Run termination
(Dagster sends SIGINT to the run's process) and SIGTERM stop the replay gracefully: it stops
reading, flushes, records the position and its metadata, then reports the interruption so the
run ends canceled.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from berka_assets.assets.streaming import topic_key
from berka_assets.jobs.replay_config import ReplayConfig
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_core.dataset.errors import BerkaError
from berka_core.producer.position import MySQLPositionStore
from berka_core.producer.replay import (
    DeliveryFailedError,
    ReplayError,
    ReplayResult,
    StopRequest,
    run_replay,
    stop_on_signals,
)


def replay_metadata(result: ReplayResult) -> dict[str, Any]:
    values = result.metadata()
    metadata: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict | list):
            metadata[key] = dg.MetadataValue.json(value)
        else:
            metadata[key] = value
    return metadata


@dg.op(
    out=dg.Out(dg.Nothing),
    tags={"kind": "kafka"},
    description="Send every Berka transaction to Kafka, paced, resuming where the last run "
    "stopped.",
)
def replay_trans(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    kafka: KafkaResource,
    mysql: MySQLResource,
    berka_source: BerkaSourceResource,
) -> Iterator[dg.Output | dg.AssetMaterialization]:
    try:
        config.validate_options()
    except ValueError as error:
        raise dg.Failure(description=f"invalid replay config: {error}") from error
    stop = StopRequest()
    try:
        with stop_on_signals(stop), MySQLPositionStore.for_resource(mysql) as positions:
            result = run_replay(config, kafka=kafka, source=berka_source, positions=positions,
                                stop=stop, log=context.log)
    except DeliveryFailedError as error:
        raise dg.Failure(
            description=str(error), metadata=replay_metadata(error.result)
        ) from error
    except (ReplayError, BerkaError) as error:
        raise dg.Failure(description=str(error)) from error
    if result.delivered or result.rejected:
        # The topic is an asset: each replay that added messages is a materialization of it.
        yield dg.AssetMaterialization(asset_key=topic_key(result.topic), metadata={
            "messages_sent": result.delivered,
            "dead_letters": result.rejected,
            "dlq_topic": result.dlq_topic,
            "source_uri": result.source_uri,
            "end_offsets": dg.MetadataValue.json(
                {str(p.partition): p.high for p in result.offsets}),
            "dagster/row_count": sum(p.high - p.low for p in result.offsets),
        })
    yield dg.Output(None, metadata=replay_metadata(result))
    if result.interrupted:
        # Metadata and position are recorded; now let Dagster end the run as canceled.
        raise dg.DagsterExecutionInterruptedError(f"replay stopped by {result.stop_reason}")


@dg.job(
    description="Replay the Berka trans file from S3 or a folder into Kafka, at a live pace.",
    tags={"kind": "kafka"},
)
def s3_replay_job() -> None:
    replay_trans()
