"""The Berka source files (an S3 prefix, or a local folder by default): the start of the lineage.
Dagster does not write them; the replay job and the reference tables read them."""

from __future__ import annotations

import dagster as dg

from berka_assets.assets.catalog import OWNERS
from berka_core.config import S3Settings, get_settings

SOURCE_FILES_KEY = dg.AssetKey(["berka", "source_files"])


def source_files_spec(settings: S3Settings | None = None) -> dg.AssetSpec:
    settings = settings or get_settings().s3
    if settings.source_kind == "s3":
        location, kinds = f"s3://{settings.bucket}/{settings.prefix}", {"s3", "csv"}
    else:
        location, kinds = get_settings().data_dir, {"file", "csv"}
    return dg.AssetSpec(
        key=SOURCE_FILES_KEY,
        description="The Berka files (account, client, disp, district, loan, card, order, "
        f"trans; ';'-separated) at {location}. Set BERKA_SOURCE_KIND=s3 to read them from S3.",
        group_name="source",
        kinds=kinds,
        metadata={"location": location, "source_kind": settings.source_kind},
        owners=OWNERS,
    )


berka_source_files = source_files_spec()
