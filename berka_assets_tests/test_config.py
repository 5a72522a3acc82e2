"""Settings from the environment (pydantic-settings) and the secrets file (python-dotenv)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from berka_core import config
from berka_core.config import (
    KafkaSettings,
    MySQLSettings,
    Settings,
    load_secrets_into_environment,
    secret,
)


def test_a_bad_value_names_its_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERKA_MYSQL_PORT", "33o7")
    with pytest.raises(ValidationError) as raised:
        Settings()
    message = str(raised.value)
    assert "BERKA_MYSQL_PORT" in message and "'33o7'" in message
    assert "valid integer" in message


def test_values_come_from_the_environment_and_can_be_given_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERKA_KAFKA_PARTITIONS", "6")
    monkeypatch.setenv("BERKA_DATA_DIR", "/data/berka")
    settings = Settings()
    assert settings.kafka.partitions == 6 and settings.data_dir == "/data/berka"
    assert KafkaSettings(partitions=2).partitions == 2
    assert MySQLSettings(port=3417).jdbc_url().startswith("jdbc:mysql://127.0.0.1:3417/")
    # Names of secrets' variables are constants, never read from the environment.
    monkeypatch.setenv("PASSWORD_ENV", "leak")
    assert MySQLSettings().password_env == "BERKA_MYSQL_PASSWORD"
    with pytest.raises(ValidationError):
        settings.kafka.partitions = 1  # type: ignore[misc]  # frozen


def test_secrets_file_is_read_as_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / ".env"
    secrets.write_text('# local credentials\nexport BERKA_A_PASSWORD="quoted value"\n'
                       "BERKA_B_PASSWORD='single#quoted'\nBERKA_C_PASSWORD=plain # note\n")
    monkeypatch.setenv("BERKA_SECRETS_FILE", str(secrets))
    for name in ("BERKA_A_PASSWORD", "BERKA_B_PASSWORD", "BERKA_C_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert secret("BERKA_A_PASSWORD") == "quoted value"
    assert secret("BERKA_B_PASSWORD") == "single#quoted"
    assert secret("BERKA_C_PASSWORD") == "plain"
    monkeypatch.setenv("BERKA_A_PASSWORD", "from the environment")
    load_secrets_into_environment()  # what the environment sets wins
    assert os.environ["BERKA_A_PASSWORD"] == "from the environment"
    assert os.environ["BERKA_B_PASSWORD"] == "single#quoted"
    monkeypatch.delenv("BERKA_B_PASSWORD")
    monkeypatch.delenv("BERKA_C_PASSWORD")


def test_settings_are_built_once_per_process_and_again_when_the_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = config.get_settings()
    assert config.get_settings() is first  # one model, shared by every caller
    monkeypatch.setenv("BERKA_KAFKA_TOPIC", "another")
    changed = config.get_settings()
    assert changed is not first and changed.kafka.topic == "another"
    assert config.get_settings() is changed
