"""Where the Berka files are read from: a local folder (the embedded default) or an S3 bucket.

Both give the same thing: a stream of the file's bytes and a URI for metadata. Files are never
read whole into memory, so the 67 MB trans file streams straight from S3.
"""

import argparse
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from berka_core.config import S3Settings, get_settings
from berka_core.dataset.errors import BerkaFileNotFoundError
from berka_core.dataset.reader import candidate_file_names, find_table_file


class BerkaSourceResource(dg.ConfigurableResource):
    """kind="folder" reads `folder`; kind="s3" reads s3://bucket/prefix through `s3`."""

    kind: Literal["folder", "s3"] = "folder"
    folder: str = Field(default_factory=lambda: get_settings().data_dir)
    bucket: str = Field(default_factory=lambda: get_settings().s3.bucket)
    prefix: str = Field(default_factory=lambda: get_settings().s3.prefix)
    s3: S3Resource

    def describe(self) -> str:
        if self.kind == "folder":
            return str(Path(self.folder).resolve())
        return f"s3://{self.bucket}/{self.prefix}"

    @contextmanager
    def open(self, table: str) -> Iterator[tuple[IO[bytes], str]]:
        """The table's file as a binary stream, and its URI."""
        if self.kind == "folder":
            path = find_table_file(self.folder, table)
            with path.open("rb") as handle:
                yield handle, path.resolve().as_uri()
            return
        key = self._find_key(table)
        body = self.s3.get_client().get_object(Bucket=self.bucket, Key=key)["Body"]
        stream = io.BufferedReader(_StreamingBodyReader(body), buffer_size=1 << 20)
        try:
            yield stream, f"s3://{self.bucket}/{key}"
        finally:
            body.close()

    def _find_key(self, table: str) -> str:
        client = self.s3.get_client()
        response = client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        keys = {item["Key"] for item in response.get("Contents", [])}
        for name in candidate_file_names(table):
            if f"{self.prefix}{name}" in keys:
                return f"{self.prefix}{name}"
        raise BerkaFileNotFoundError(
            f"Berka {table} file not found in s3://{self.bucket}/{self.prefix} (accepted "
            f"names: {', '.join(candidate_file_names(table))})"
        )


class _StreamingBodyReader(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so it can be buffered and read by lines."""

    def __init__(self, body) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._body.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


BERKA_SUFFIXES = (".asc", ".csv")


def berka_files(folder: str | Path) -> list[Path]:
    """The Berka files of `folder` (*.asc, *.csv), by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix in BERKA_SUFFIXES and p.is_file())


def upload_folder(
    s3_client,
    folder: str | Path,
    bucket: str,
    prefix: str,
    *,
    on_file: Callable[[Path, str], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> list[str]:
    """Upload the Berka files of `folder` to s3://bucket/prefix (creating the bucket).

    `on_file(path, uri)` is called as each file starts, `on_bytes(n)` as its bytes are sent
    (from boto3's transfer threads).
    """
    from botocore.exceptions import ClientError

    try:
        s3_client.head_bucket(Bucket=bucket)
    except ClientError as error:
        # Only a missing bucket is created: a 403 would fail again, less clearly, in create.
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        region = s3_client.meta.region_name
        if region in (None, "us-east-1"):
            s3_client.create_bucket(Bucket=bucket)
        else:  # S3 requires the region outside us-east-1 (and rejects it as us-east-1)
            s3_client.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
    uploaded = []
    for path in berka_files(folder):
        uri = f"s3://{bucket}/{prefix}{path.name}"
        if on_file:
            on_file(path, uri)
        s3_client.upload_file(str(path), bucket, f"{prefix}{path.name}", Callback=on_bytes)
        uploaded.append(uri)
    return uploaded


def _upload_parser(settings: S3Settings) -> argparse.ArgumentParser:
    endpoint = (settings.endpoint_url or "AWS S3 itself").replace("%", "%%")
    parser = argparse.ArgumentParser(
        prog="berka-upload",
        description="Upload the Berka files of FOLDER to s3://BUCKET/PREFIX (the bucket is "
        "created if missing), where the pipeline reads them with BERKA_SOURCE_KIND=s3.",
        epilog="Credentials come from the usual AWS variables (AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and AWS_REGION.",
    )
    parser.add_argument(
        "folder", metavar="FOLDER",
        help="folder holding the Berka files: every *.asc and *.csv file in it is uploaded "
        "(e.g. data/berka, or the --out folder of berka-generate)",
    )
    parser.add_argument(
        "--bucket", default=settings.bucket,
        help="bucket to upload into (default: %(default)s, from BERKA_S3_BUCKET)",
    )
    parser.add_argument(
        "--prefix", default=settings.prefix,
        help="key prefix of the files: raw/ gives s3://BUCKET/raw/account.asc "
        "(default: %(default)s, from BERKA_S3_PREFIX)",
    )
    parser.add_argument(
        "--endpoint-url", default=settings.endpoint_url or None, metavar="URL",
        help="S3-compatible endpoint, e.g. http://localhost:9000 "
        f"(default: {endpoint}, from BERKA_S3_ENDPOINT_URL)",
    )
    return parser


def _error(message: str) -> None:
    print(f"berka-upload: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """`berka-upload FOLDER [--bucket B] [--prefix P] [--endpoint-url URL]`: 0 when uploaded,
    2 for a wrong FOLDER or option, 1 when S3 fails."""
    import boto3
    from boto3.exceptions import Boto3Error
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    from tqdm import tqdm  # a dagster dependency

    settings = get_settings().s3
    args = _upload_parser(settings).parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "does not exist"
        _error(f"FOLDER {str(folder)!r} {reason}")
        return 2
    try:
        files = berka_files(folder)
    except OSError as error:
        _error(f"cannot read FOLDER {str(folder)!r}: {error.strerror or error}")
        return 2
    if not files:
        _error(f"no Berka files (*.asc, *.csv) in {str(folder)!r}")
        return 2
    # A down or wrong endpoint fails in seconds, not after the legacy retry mode's 5 attempts
    # with back-off; the standard mode still retries throttling and 5xx answers.
    config = Config(connect_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
    try:
        client = boto3.client("s3", endpoint_url=args.endpoint_url,
                              region_name=settings.region, config=config)
    except ValueError as error:  # botocore: "Invalid endpoint: ..."
        _error(f"--endpoint-url {args.endpoint_url!r}: {error}")
        return 2
    target = f"s3://{args.bucket}/{args.prefix} at {client.meta.endpoint_url}"
    position = {path: index for index, path in enumerate(files, 1)}
    total = sum(path.stat().st_size for path in files)
    # One line per file on stdout; a byte bar on stderr only when it is a terminal.
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
              disable=None, leave=False) as bar:

        def on_file(path: Path, uri: str) -> None:
            size = path.stat().st_size / 1e6
            bar.write(f"  [{position[path]}/{len(files)}] {path.name} ({size:.1f} MB) -> {uri}",
                      file=sys.stdout)

        try:
            upload_folder(client, folder, args.bucket, args.prefix, on_file=on_file,
                          on_bytes=bar.update)
        except (BotoCoreError, ClientError, Boto3Error) as error:
            hint = (" (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
                    if isinstance(error, NoCredentialsError) else "")
            bar.close()
            _error(f"upload to {target} failed: {error}{hint}")
            return 1
        except OSError as error:  # a local file unreadable or gone mid-way
            bar.close()
            _error(f"upload to {target} failed: {error}")
            return 1
    print(f"uploaded {len(files)} files ({total / 1e6:.1f} MB) to {target}")
    return 0
