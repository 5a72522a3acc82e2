"""Where the Berka files come from: an S3 bucket (any S3-compatible endpoint) or a folder."""

from __future__ import annotations

from dagster_aws.s3 import S3Resource

from berka_core.config import S3Settings, get_settings


def s3_resource(settings: S3Settings | None = None) -> S3Resource:
    settings = settings or get_settings().s3
    return S3Resource(endpoint_url=settings.endpoint_url or None, region_name=settings.region)
