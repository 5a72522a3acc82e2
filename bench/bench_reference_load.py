"""Reference-table load time: the seven Berka tables into MySQL through the real asset.

Loads the shipped real sample (or --folder) into a throw-away MySQL database several times and
prints the median wall time of the materialization (staging, one-transaction swap, previews)
and rows/s. Needs the local stack (`berka-stack up`).

    python bench/bench_reference_load.py --repeat 5 [--folder var/generated/scale-1-seed-0]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid

import dagster as dg

from berka_assets.assets.reference import reference_tables
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.factory import build_resources
from berka_assets.resources.mysql import MySQLResource
from berka_core.config import get_settings, load_secrets_into_environment, secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--folder", default=None)
    args = parser.parse_args()
    load_secrets_into_environment()
    settings = get_settings()
    folder = args.folder or settings.data_dir
    database = f"berka_test_bench_{uuid.uuid4().hex[:6]}"
    admin = MySQLResource(password=secret(settings.mysql.password_env))
    with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
    resources = {**build_resources(settings),
                 "mysql": MySQLResource(database=database, password=admin.password),
                 "berka_source": BerkaSourceResource(folder=folder,
                                                     s3=build_resources(settings)["s3"])}
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"source {folder}")
    seconds, rows = [], 0
    try:
        for attempt in range(args.repeat):
            started = time.monotonic()
            result = dg.materialize([reference_tables], resources=resources)
            seconds.append(time.monotonic() - started)
            rows = sum(e.materialization.metadata["dagster/row_count"].value
                       for e in result.get_asset_materialization_events())
            kind = "first" if attempt == 0 else "reload"
            print(f"  load {attempt + 1}: {seconds[-1]:.2f} s ({kind})")
    finally:
        with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE `{database}`")
    median = statistics.median(seconds)
    print(f"7 tables, {rows:,} rows: median {median:.2f} s = {rows / median:,.0f} rows/s")


if __name__ == "__main__":
    main()
