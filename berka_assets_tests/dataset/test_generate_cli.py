"""`berka-generate` as a user meets it: option errors that say what was expected, help, progress."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from berka_core.dataset import generate_cli
from berka_core.dataset.generator import generate


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--scale", "abc", "argument --scale: expected a positive number, got 'abc'"),
        ("--scale", "0", "argument --scale: expected a positive number, got '0'"),
        ("--scale", "-2", "argument --scale: expected a positive number, got '-2'"),
        ("--scale", "nan", "argument --scale: expected a positive number, got 'nan'"),
        ("--scale", "inf", "argument --scale: expected a positive number, got 'inf'"),
        ("--seed", "x", "argument --seed: expected an integer, got 'x'"),
        ("--seed", "1.5", "argument --seed: expected an integer, got '1.5'"),
    ],
)
def test_a_bad_option_value_says_what_was_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, expected: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        generate_cli.main([option, value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"berka-generate: error: {expected}"
    assert "invalid" not in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_every_option_has_a_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    for action in generate_cli.build_parser()._actions:
        assert action.help, action.dest
    with pytest.raises(SystemExit) as exit_info:
        generate_cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "size relative to the real data set" in out and "(default: 1.0)" in out
    assert "random seed" in out and "(default: 0)" in out
    assert "folder to write the files into" in out


def test_out_that_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "data.asc"
    a_file.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        generate_cli.main(["--scale", "0.01", "--out", str(a_file)])
    assert exit_info.value.code == 2
    assert f"--out: '{a_file}' exists and is not a folder" in capsys.readouterr().err


def test_an_unwritable_out_is_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "data.asc"
    a_file.write_text("")
    assert generate_cli.main(["--scale", "0.01", "--out", str(a_file / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"berka-generate: error: cannot write {a_file / 'sub'}: ")
    assert len(err.splitlines()) == 1


def test_progress_goes_to_stderr_and_the_summary_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate_cli.main(["--scale", "0.005", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(r"  shard 1/1: 22 accounts, [\d,]+ trans rows\n", captured.err)
    assert captured.out.startswith(f"wrote {tmp_path}: ")


def test_progress_reports_each_shard_and_the_merge(tmp_path: Path) -> None:
    lines: list[str] = []
    result = generate(tmp_path, scale=0.02, seed=1, shard_accounts=40, progress=lines.append)
    assert [line.split(":")[0] for line in lines[:-1]] == ["shard 1/3", "shard 2/3", "shard 3/3"]
    assert sum(int(line.split(", ")[1].split()[0].replace(",", "")) for line in lines[:-1]) == (
        result.rows["trans"]
    )
    assert lines[-1] == "merging the 3 shards' loan, card, trans files by date"
