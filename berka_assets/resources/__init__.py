"""Dagster resources: the only way assets, sensors and jobs reach the outside world."""
