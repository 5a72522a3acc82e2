"""When the Kafka sensor asks for a Delta maintenance run: every N planned batches of its
database, never while one is queued or running, again from 1 after a ledger reset; and when a
maintenance run also vacuums. Runs are recorded in a real (ephemeral) Dagster instance."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from berka_assets.jobs.maintenance import (
    AFTER_BATCH_TAG,
    MAINTENANCE_TAG,
    VACUUMED_TAG,
    delta_maintenance_job,
    maintenance_request,
    vacuum_due,
)

DATABASE = "berka_test"
EVERY = 32


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _record(instance: dg.DagsterInstance, request: dg.RunRequest, *, finished: bool):
    run = instance.create_run_for_job(job_def=delta_maintenance_job,
                                      run_config=request.run_config, tags=request.tags)
    if finished:
        instance.report_run_failed(run)  # failed or not, it counts as the last maintenance
    return run


def test_no_maintenance_before_the_first_n_batches(instance) -> None:
    assert maintenance_request(instance, DATABASE, EVERY - 1, EVERY) is None
    assert maintenance_request(instance, DATABASE, 100, 0) is None  # 0: turned off


def test_every_n_batches_one_run_for_the_database(instance) -> None:
    request = maintenance_request(instance, DATABASE, EVERY, EVERY)
    assert request is not None
    assert request.job_name == delta_maintenance_job.name
    assert request.tags == {MAINTENANCE_TAG: DATABASE, AFTER_BATCH_TAG: str(EVERY)}
    assert request.run_config["ops"]["maintain_delta_tables"]["config"] == {
        "hive_database": DATABASE}
    # The same tick again asks for the same run key, which the daemon launches only once.
    assert maintenance_request(instance, DATABASE, EVERY, EVERY).run_key == request.run_key

    _record(instance, request, finished=True)
    assert maintenance_request(instance, DATABASE, 2 * EVERY - 1, EVERY) is None
    due = maintenance_request(instance, DATABASE, 2 * EVERY + 3, EVERY)
    assert due is not None and due.tags[AFTER_BATCH_TAG] == str(2 * EVERY + 3)
    assert due.run_key != request.run_key


def test_none_while_the_last_one_is_queued_or_running(instance) -> None:
    request = maintenance_request(instance, DATABASE, EVERY, EVERY)
    _record(instance, request, finished=False)  # created, not started: in flight
    assert maintenance_request(instance, DATABASE, 10 * EVERY, EVERY) is None


def test_another_database_does_not_count(instance) -> None:
    other = maintenance_request(instance, "other_db", EVERY, EVERY)
    _record(instance, other, finished=False)
    assert maintenance_request(instance, DATABASE, EVERY, EVERY) is not None


def test_after_a_ledger_reset_batches_count_from_one_again(instance) -> None:
    _record(instance, maintenance_request(instance, DATABASE, 5 * EVERY, EVERY), finished=True)
    assert maintenance_request(instance, DATABASE, EVERY - 1, EVERY) is None
    assert maintenance_request(instance, DATABASE, EVERY, EVERY) is not None


def test_vacuum_is_due_every_n_hours_after_the_last_run_that_vacuumed(instance) -> None:
    assert vacuum_due(instance, DATABASE, 6)  # never vacuumed
    compacted_only = _record(instance, maintenance_request(instance, DATABASE, EVERY, EVERY),
                             finished=True)
    assert vacuum_due(instance, DATABASE, 6), "a run that did not vacuum does not count"
    vacuumed = _record(instance, maintenance_request(instance, DATABASE, 2 * EVERY, EVERY),
                       finished=True)
    instance.add_run_tags(vacuumed.run_id, {VACUUMED_TAG: "true"})  # as the op does
    assert not vacuum_due(instance, DATABASE, 6)
    assert vacuum_due(instance, "other_db", 6)
    assert vacuum_due(instance, DATABASE, 0)  # 0: at every maintenance
    time.sleep(0.05)
    assert vacuum_due(instance, DATABASE, 0.01 / 3600)  # 10 ms after it
    assert compacted_only.run_id != vacuumed.run_id
