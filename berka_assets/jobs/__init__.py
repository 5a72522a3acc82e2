"""Dagster jobs that are not asset materializations."""

from berka_assets.jobs.maintenance import delta_maintenance_job
from berka_assets.jobs.replay import s3_replay_job

__all__ = ["delta_maintenance_job", "s3_replay_job"]
