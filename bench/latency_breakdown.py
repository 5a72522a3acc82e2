"""Where a record's latency goes, stage by stage, for both paths ([latency]).

Every record's latency (its batch visible - its send) is cut into consecutive stages that add
up to it exactly, from what the system records anyway:

- sensor path: the Dagster instance (the sensor tick that requested the run, the run's
  ENQUEUED / STARTING / START / STEP_START events, and the micro-batch's per-step seconds in its
  `enriched_transactions` materialization) and the ledger's visible_at of the batch;
- streaming job: its log (Spark's per-trigger durations and our per-step seconds) and the ledger.

The table gives each stage's mean per record, its 95th percentile and its share of the mean
latency; per-run stages count once per record they delay.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

# The micro-batch's steps up to the moment it is visible (microbatch.run_batch, in order).
SENSOR_BATCH_STEPS = ("prepare", "finish plan", "frontier", "classify", "plan", "write",
                      "commit", "trends")
# Spark's work of a trigger before our foreachBatch function runs (durationMs keys).
TRIGGER_PLANNING = ("latestOffset", "getBatch", "queryPlanning", "walCommit")
# The streaming batch's steps up to visible (stream_batch.run_stream_batch).
STREAM_BATCH_STEPS = ("classify", "frontier", "count", "plan", "write", "trends", "cube",
                      "commit", "visible")

Record = tuple[str, float, float]  # batch_id, sent (epoch s), visible (epoch s)


@dataclass
class Breakdown:
    stages: dict[str, list[float]]  # stage -> one value per record, in stage order

    def table(self, title: str) -> str:
        latencies = [sum(values) for values in zip(*self.stages.values(), strict=True)]
        if not latencies:
            return f"{title}: no record"
        mean_latency = sum(latencies) / len(latencies)
        lines = [f"{title} ({len(latencies):,} records, mean latency {mean_latency:.2f} s)",
                 f"  {'stage':<34} {'mean s':>8} {'p95 s':>8} {'share':>7}"]
        for stage, values in self.stages.items():
            mean = sum(values) / len(values)
            lines.append(f"  {stage:<34} {mean:8.2f} {_p95(values):8.2f} "
                         f"{mean / mean_latency:7.1%}")
        return "\n".join(lines)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def records(rows: Iterable, visible: Mapping[str, dt.datetime]) -> list[Record]:
    """(batch_id, sent, visible) of every enriched row (batch_id, sent_at_ms) made visible."""
    at = {batch: when.replace(tzinfo=dt.UTC).timestamp() for batch, when in visible.items()}
    return [(row.batch_id, row.sent_at_ms / 1000, at[row.batch_id])
            for row in rows if row.batch_id in at]


# --- the sensor path ---------------------------------------------------------------------------
@dataclass
class _Run:
    tick_started: float
    created: float
    starting: float
    started: float
    step_started: float
    steps: dict[str, float]


def sensor_breakdown(instance: DagsterInstance, rows: list[Record]) -> Breakdown:
    runs = _sensor_runs(instance)
    stages: dict[str, list[float]] = defaultdict(list)
    for batch_id, sent, visible in rows:
        run = runs.get(batch_id)
        if run is None:
            continue
        seen = max(run.tick_started, sent)  # a record sent during the tick's evaluation
        parts = {
            "wait for the sensor's tick": seen - sent,
            "sensor evaluation": run.created - seen,
            "queued (run coordinator)": run.starting - run.created,
            "launch (process, imports)": run.started - run.starting,
            "run set-up (resources)": run.step_started - run.started,
        }
        for step in SENSOR_BATCH_STEPS:
            parts[f"batch: {step}"] = run.steps.get(step, 0.0)
        parts["batch: rest, until visible"] = (
            visible - run.step_started - sum(run.steps.get(s, 0.0) for s in SENSOR_BATCH_STEPS))
        for stage, seconds in parts.items():
            stages[stage].append(seconds)
    return _without_empty(stages)


def _without_empty(stages: dict[str, list[float]]) -> Breakdown:
    """Stages no record went through are left out (every record has every stage: the sums
    still add up)."""
    return Breakdown({stage: values for stage, values in stages.items() if any(values)})


def _sensor_runs(instance: DagsterInstance) -> dict[str, _Run]:
    """Per batch_id, the sensor-launched run that committed it."""
    runs = {}
    for record in instance.get_run_records():
        tags = record.dagster_run.tags
        if "dagster/tick" not in tags:
            continue
        tick = instance.schedule_storage.get_tick(int(tags["dagster/tick"]))
        times, batch_id, steps = {}, None, {}
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            times.setdefault(event.event_type, entry.timestamp)
            if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.step_materialization_data.materialization
                if materialization.asset_key.path[-1] == "enriched_transactions":
                    metadata = materialization.metadata
                    batch_id = metadata["batch_id"].value
                    steps = metadata["seconds"].value if "seconds" in metadata else {}
        needed = (DagsterEventType.PIPELINE_STARTING, DagsterEventType.PIPELINE_START,
                  DagsterEventType.STEP_START)
        if batch_id and all(kind in times for kind in needed):
            runs[batch_id] = _Run(
                tick.timestamp, record.create_timestamp.timestamp(),
                times[DagsterEventType.PIPELINE_STARTING], times[DagsterEventType.PIPELINE_START],
                times[DagsterEventType.STEP_START], steps)
    return runs


# --- the streaming job -------------------------------------------------------------------------
_EPOCH = re.compile(r"epoch (\d+): .* batch (\S+) in ([\d.]+) s \((.*)\)$")
_DURATIONS = re.compile(r"trigger (\d+) durations \(ms\): (\{.*\})$")


def streaming_breakdown(log_text: str, rows: list[Record]) -> Breakdown:
    """From the job's log lines of its batches ('epoch N: ... batch B in T s (step s, ...)') and
    of Spark's progress ('trigger N durations (ms): {...}')."""
    batches: dict[str, tuple[int, dict[str, float]]] = {}
    durations: dict[int, dict[str, int]] = {}
    for line in log_text.splitlines():
        if match := _EPOCH.search(line):
            steps = dict(_step(part) for part in match.group(4).split(", ") if " " in part)
            batches[match.group(2)] = (int(match.group(1)), steps)
        elif match := _DURATIONS.search(line):
            durations[int(match.group(1))] = ast.literal_eval(match.group(2))
    stages: dict[str, list[float]] = defaultdict(list)
    for batch_id, sent, visible in rows:
        if batch_id not in batches or batches[batch_id][0] not in durations:
            continue
        epoch, steps = batches[batch_id]
        spark_ms = durations[epoch]
        planning = sum(spark_ms.get(key, 0) for key in TRIGGER_PLANNING) / 1000
        ours = {f"batch: {step}": steps.get(step, 0.0) for step in STREAM_BATCH_STEPS}
        processing = planning + sum(ours.values())
        parts = {"wait for the trigger": visible - sent - processing,
                 "trigger planning (Spark: offsets, plan, WAL)": planning, **ours}
        for stage, seconds in parts.items():
            stages[stage].append(seconds)
    return _without_empty(stages)


def _step(part: str) -> tuple[str, float]:
    name, seconds = part.rsplit(" ", 1)
    return name, float(seconds)


def log_since(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")
