"""`berka-upload` as a user meets it: help, FOLDER errors (status 2), S3 errors (status 1) and a
full upload, the last two against the stack's local S3 server."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import boto3
import pytest

from berka_assets.resources import berka_source
from berka_core.config import Settings
from berka_stack.dev import free_port
from berka_stack.s3 import local_s3_endpoint


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Known settings and fake credentials: none of the shell's or the stack's leak in."""
    for name in ("BERKA_S3_ENDPOINT_URL", "BERKA_S3_BUCKET", "BERKA_S3_PREFIX", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def berka_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "berka"
    folder.mkdir()
    (folder / "account.asc").write_text('"account_id";"district_id"\r\n1;18\r\n')
    (folder / "district.csv").write_text("A1;A2\r\n1;Hl.m. Praha\r\n")
    (folder / "FORMAT.md").write_text("not uploaded")
    return folder


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("berka-upload: error: ")
    return lines[0]


def test_help_explains_every_argument_and_its_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BERKA_S3_BUCKET", "my-bucket")
    with pytest.raises(SystemExit) as exit_info:
        berka_source.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "FOLDER folder holding the Berka files" in out
    assert "--bucket BUCKET bucket to upload into (default: my-bucket" in out
    assert "(default: raw/, from BERKA_S3_PREFIX)" in out
    assert "--endpoint-url URL S3-compatible endpoint" in out
    assert "(default: AWS S3 itself, from BERKA_S3_ENDPOINT_URL)" in out
    for action in berka_source._upload_parser(berka_source.S3Settings())._actions:
        assert action.help, action.dest


@pytest.mark.parametrize(
    ("make_folder", "message"),
    [
        (lambda tmp: tmp / "missing", "FOLDER '{}' does not exist"),
        (lambda tmp: tmp / "berka" / "account.asc", "FOLDER '{}' is not a folder"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty",
         "no Berka files (*.asc, *.csv) in '{}'"),
    ],
    ids=["missing", "a-file", "no-berka-files"],
)
def test_a_wrong_folder_is_one_line_and_status_2(
    tmp_path: Path, berka_folder: Path, capsys: pytest.CaptureFixture[str], make_folder, message
) -> None:
    folder = make_folder(tmp_path)
    # A closed endpoint too: the folder is checked before any S3 call.
    argv = [str(folder), "--endpoint-url", f"http://127.0.0.1:{free_port()}"]
    assert berka_source.main(argv) == 2
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == f"berka-upload: error: {message.format(folder)}"
    assert captured.out == ""


def test_an_invalid_endpoint_url_is_status_2(
    berka_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert berka_source.main([str(berka_folder), "--endpoint-url", "localhost"]) == 2
    assert "--endpoint-url 'localhost'" in one_error_line(capsys.readouterr().err)


def test_an_unreachable_endpoint_fails_fast_naming_endpoint_and_bucket(
    berka_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    assert berka_source.main([str(berka_folder), "--endpoint-url", endpoint,
                              "--bucket", "b1"]) == 1
    assert time.monotonic() - started < 10  # few retries, not legacy mode's back-off
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"berka-upload: error: upload to s3://b1/raw/ at {endpoint} failed: ")
    assert "Could not connect to the endpoint URL" in line


def test_an_s3_error_answer_is_one_line_and_status_1(
    stack: Settings, berka_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local S3 server refuses the bucket name: one line with its answer, status 1."""
    endpoint = local_s3_endpoint()
    assert berka_source.main([str(berka_folder), "--bucket", "ab",
                              "--endpoint-url", endpoint]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"upload to s3://ab/raw/ at {endpoint} failed: " in line
    assert "InvalidBucketName" in line


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1"])
def test_uploads_the_berka_files_with_a_line_per_file(
    stack: Settings, berka_folder: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], region: str,
) -> None:
    """Into the local S3 server (an S3-compatible process of the stack)."""
    monkeypatch.setenv("AWS_REGION", region)
    endpoint = local_s3_endpoint()
    bucket = f"upload-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", region_name=region, endpoint_url=endpoint)
    try:
        assert berka_source.main([str(berka_folder), "--bucket", bucket, "--prefix", "p/",
                                  "--endpoint-url", endpoint]) == 0
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        body = s3.get_object(Bucket=bucket, Key="p/account.asc")["Body"].read()
    finally:
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
    assert keys == ["p/account.asc", "p/district.csv"]
    assert body == (berka_folder / "account.asc").read_bytes()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"  [1/2] account.asc (0.0 MB) -> s3://{bucket}/p/account.asc")
    assert out[1].startswith(f"  [2/2] district.csv (0.0 MB) -> s3://{bucket}/p/district.csv")
    assert out[2].startswith(f"uploaded 2 files (0.0 MB) to s3://{bucket}/p/ at {endpoint}")
