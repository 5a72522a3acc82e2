"""Declarative automation: the streaming checks and the trends report run on their own.

Both use `AutomationCondition.on_cron`: once per cron tick, and only when the assets they read
were materialized since that tick, so an idle pipeline launches nothing. The micro-batches
themselves stay with the Kafka sensor (their offset ranges come from Kafka, not from a
condition). The automation sensor evaluates the conditions; `make dev` switches it on.
"""

from __future__ import annotations

import dagster as dg

from berka_core.config import get_settings

AUTOMATION_SENSOR = "berka_automation_sensor"


def checks_condition() -> dg.AutomationCondition:
    return dg.AutomationCondition.on_cron(get_settings().sensor.checks_cron)


def report_condition() -> dg.AutomationCondition:
    return dg.AutomationCondition.on_cron(get_settings().sensor.report_cron)


automation_sensor = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR,
    target=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
    # Off by default: a deployment switches it on in the UI (or `make dev` does); tests that
    # start a `dagster dev` must not launch runs on the shared stack.
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=30,
    description="Runs the streaming checks (BERKA_CHECKS_CRON) and the trends report "
    "(BERKA_REPORT_CRON) after new micro-batches.",
)
