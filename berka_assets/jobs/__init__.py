"""Dagster jobs that are not asset materializations."""

from berka_assets.jobs.replay import s3_replay_job

__all__ = ["s3_replay_job"]
