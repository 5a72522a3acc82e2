"""Where the Berka files are read from: a local folder (the embedded default) or an S3 bucket.

Both give the same thing: a stream of the file's bytes and a URI for metadata. Files are never
read whole into memory, so the 67 MB trans file streams straight from S3.
"""

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from berka_assets.berka.reader import BerkaFileNotFoundError, candidate_file_names, find_table_file
from berka_assets.config import S3Settings, Settings


class BerkaSourceResource(dg.ConfigurableResource):
    """kind="folder" reads `folder`; kind="s3" reads s3://bucket/prefix through `s3`."""

    kind: Literal["folder", "s3"] = "folder"
    folder: str = Field(default_factory=lambda: Settings().data_dir)
    bucket: str = Field(default_factory=lambda: S3Settings().bucket)
    prefix: str = Field(default_factory=lambda: S3Settings().prefix)
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


def upload_folder(s3_client, folder: str | Path, bucket: str, prefix: str) -> list[str]:
    """Upload the Berka files of `folder` to s3://bucket/prefix (creating the bucket)."""
    from botocore.exceptions import ClientError

    try:
        s3_client.head_bucket(Bucket=bucket)
    except ClientError:
        s3_client.create_bucket(Bucket=bucket)
    uploaded = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix in (".asc", ".csv"):
            s3_client.upload_file(str(path), bucket, f"{prefix}{path.name}")
            uploaded.append(f"s3://{bucket}/{prefix}{path.name}")
    return uploaded


def main(argv: list[str] | None = None) -> int:
    """`berka-upload FOLDER [--bucket B] [--prefix P] [--endpoint-url URL]`."""
    import argparse

    import boto3

    settings = S3Settings()
    parser = argparse.ArgumentParser(prog="berka-upload", description=upload_folder.__doc__)
    parser.add_argument("folder")
    parser.add_argument("--bucket", default=settings.bucket)
    parser.add_argument("--prefix", default=settings.prefix)
    parser.add_argument("--endpoint-url", default=settings.endpoint_url or None)
    args = parser.parse_args(argv)
    client = boto3.client("s3", endpoint_url=args.endpoint_url, region_name=settings.region)
    for uri in upload_folder(client, args.folder, args.bucket, args.prefix):
        print(f"  uploaded {uri}")
    return 0
