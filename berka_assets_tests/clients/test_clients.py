"""The Dagster-free clients the spark-submit job uses: built from the environment, secrets
included, and the same behaviour as the Dagster resources (one code)."""

from __future__ import annotations

import pytest

from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_core.clients.kafka import KafkaClient
from berka_core.clients.mysql import MySQLClient


def test_the_streaming_jobs_kafka_client_carries_the_sasl_password(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERKA_KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("BERKA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BERKA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BERKA_KAFKA_SASL_USERNAME", "berka")
    monkeypatch.setenv("BERKA_KAFKA_SASL_PASSWORD", "s3cret")
    client = KafkaClient.from_settings()
    options = client.spark_options()
    assert options["kafka.bootstrap.servers"] == "broker:9093"
    assert 'ScramLoginModule required username="berka" password="s3cret";' in (
        options["kafka.sasl.jaas.config"])
    assert "s3cret" not in repr(client)
    # The Dagster resource with the same settings gives the same options.
    resource = KafkaResource(sasl_password="s3cret")
    assert resource.spark_options() == options


def test_the_mysql_client_keeps_credentials_out_of_urls_and_reprs(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERKA_MYSQL_PASSWORD", "pw-123")
    client = MySQLClient.from_settings()
    assert "pw-123" not in client.jdbc_url() and "pw-123" not in repr(client)
    assert client.jdbc_properties()["password"] == "pw-123"
    resource = MySQLResource(password="pw-123")
    assert (resource.jdbc_url(), resource.jdbc_properties()) == (
        client.jdbc_url(), client.jdbc_properties())
