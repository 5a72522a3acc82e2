"""A test-only code location: one sensor that ticks every second, for the MySQL tick test.

Loaded by `dagster-daemon run` from a workspace that test_instance_mysql.py writes.
"""

import dagster as dg

TICK_SENSOR = "berka_ui_tick_sensor"


@dg.sensor(name=TICK_SENSOR, minimum_interval_seconds=1,
           default_status=dg.DefaultSensorStatus.RUNNING)
def tick_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    return dg.SkipReason("berka-stream UI test: a tick, nothing to run")


defs = dg.Definitions(sensors=[tick_sensor])
