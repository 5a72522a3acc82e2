"""An S3-compatible server on loopback (moto in server mode) for the S3 source and its tests.

It keeps objects in memory: a restart empties it. Real AWS S3, MinIO or any S3-compatible store
is used by setting BERKA_S3_ENDPOINT_URL (empty = AWS) and the usual AWS_* credentials.
"""

from __future__ import annotations

import os
import sys
import urllib.request

from berka_stack import process
from berka_stack.service import Service

LOCAL_S3_HOST = "127.0.0.1"


def local_s3_port() -> int:
    return int(os.environ.get("BERKA_LOCAL_S3_PORT", "9000"))


def local_s3_endpoint() -> str:
    return f"http://{LOCAL_S3_HOST}:{local_s3_port()}"


class S3Server(Service):
    name = "s3"
    start_timeout = 60.0

    @property
    def address(self) -> str:
        return f"{LOCAL_S3_HOST}:{local_s3_port()}"

    def _launch(self) -> int:
        return process.start_daemon(
            self.name,
            [sys.executable, "-m", "moto.server", "-H", LOCAL_S3_HOST, "-p", str(local_s3_port())],
        )

    def is_healthy(self) -> bool:
        with urllib.request.urlopen(f"{local_s3_endpoint()}/moto-api/", timeout=2) as response:
            return response.status == 200

    def version(self) -> str:
        from importlib.metadata import version

        return f"moto {version('moto')} (S3 API)"
