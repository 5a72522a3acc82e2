"""A small client of the Dagster webserver's GraphQL API: code location, sensors, runs.

`DagsterDev` (berka_stack.dev) is this client plus the `dagster dev` process it talks to; the
queries and the calls that post them live here so the launcher stays about processes. Only what
the launcher, the demo and the tests need is covered, with no client library: the stdlib's
urllib posts the queries.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

REPOSITORY = "__repository__"

# Run statuses after which a run does not change any more.
FINISHED_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class DagsterDevError(RuntimeError):
    """dagster dev did not start, answer or do what was asked; the message says why."""


class DagsterUIClient:
    """GraphQL calls to the webserver at `url` about code location `location`.

    A subclass provides both, and may say whether the server still runs (`running`) and what to
    show when a wait fails (`_tail`): a wait gives up early once the server is gone.
    """

    url: str
    location: str

    def running(self) -> bool:
        """Whether the webserver still runs; a server started elsewhere is taken to."""
        return True

    def _tail(self) -> str:
        """What to add to a failed wait's message (DagsterDev: its log's last lines)."""
        return ""

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None,
                timeout: float = 60.0) -> dict[str, Any]:
        """POST a query to /graphql; the `data`, or DagsterDevError with the errors."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            raise DagsterDevError(
                f"GraphQL HTTP {error.code}: {error.read().decode(errors='replace')[:2000]}"
            ) from error
        if payload.get("errors"):
            raise DagsterDevError(f"GraphQL errors: {json.dumps(payload['errors'])[:2000]}")
        return payload["data"]

    def wait_for_location(self, timeout: float = 180.0) -> None:
        """Until the code location is loaded; its load error (a PythonError) is raised."""

        def loaded() -> bool:
            data = self.graphql(_WORKSPACE_QUERY)["workspaceOrError"]
            for entry in data.get("locationEntries", []):
                if entry["name"] != self.location or entry["loadStatus"] != "LOADED":
                    continue
                error = entry["locationOrLoadError"]
                if error and error["__typename"] == "PythonError":
                    raise DagsterDevError(
                        f"code location {self.location} failed to load: {error['message']}"
                    )
                return True
            return False

        self._wait(loaded, time.monotonic() + timeout, f"code location {self.location}")

    def dismiss_welcome_dialog(self) -> None:
        """Mark the UI's one-time "Join the Dagster community" dialog as seen (screenshots)."""
        self.graphql("mutation { setNuxSeen }")

    def sensor_selector(self, name: str) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": REPOSITORY,
                "sensorName": name}

    def sensor_status(self, name: str) -> str:
        result = self.graphql(_SENSOR_QUERY, {"selector": self.sensor_selector(name)})
        return _sensor_status(result["sensorOrError"])

    def start_sensor(self, name: str) -> str:
        """Switch a sensor on (stored in the instance, so it stays on); returns its status."""
        result = self.graphql(_START_SENSOR, {"selector": self.sensor_selector(name)})
        return _sensor_status(result["startSensor"])

    def launch_run(
        self,
        job_name: str,
        *,
        asset_keys: list[list[str]] | None = None,
        asset_checks: list[tuple[list[str], str]] | None = None,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch (queue) a run of a job, optionally an asset subset of it; returns its id."""
        selector: dict[str, Any] = {"repositoryLocationName": self.location,
                                    "repositoryName": REPOSITORY, "jobName": job_name}
        if asset_keys is not None:
            selector["assetSelection"] = [{"path": key} for key in asset_keys]
        if asset_checks is not None:
            selector["assetCheckSelection"] = [
                {"assetKey": {"path": key}, "name": name} for key, name in asset_checks
            ]
        params = {
            "selector": selector,
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": [{"key": k, "value": v}
                                           for k, v in (tags or {}).items()]},
        }
        result = self.graphql(_LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise DagsterDevError(f"launchRun: {json.dumps(result)[:2000]}")
        return result["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        result = self.graphql(_RUN_QUERY, {"runId": run_id})["runOrError"]
        if result["__typename"] != "Run":
            raise DagsterDevError(f"run {run_id}: {json.dumps(result)[:2000]}")
        return result["status"]

    def wait_for_run(self, run_id: str, timeout: float = 180.0) -> str:
        """Poll until the run finished; returns SUCCESS, FAILURE or CANCELED."""
        status: list[str] = []

        def finished() -> bool:
            status.append(self.run_status(run_id))
            return status[-1] in FINISHED_RUN_STATUSES

        self._wait(finished, time.monotonic() + timeout, f"run {run_id} to finish",
                   swallow=False)
        return status[-1]

    # -- internals -------------------------------------------------------------------------
    def _server_answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
            return response.status == 200 and "dagster_webserver_version" in json.load(response)

    def _wait(self, ready: Callable[[], bool], deadline: float, what: str, *,
              swallow: bool = True) -> None:
        while True:
            try:
                if ready():
                    return
            except DagsterDevError:
                raise
            except (OSError, ValueError):  # not listening yet, or half-started
                if not swallow:
                    raise
            if not self.running():
                raise DagsterDevError(f"dagster dev exited while waiting for {what}.{self._tail()}")
            if time.monotonic() > deadline:
                raise DagsterDevError(f"timed out waiting for {what}.{self._tail()}")
            time.sleep(0.5)


def _sensor_status(result: Mapping[str, Any]) -> str:
    if result["__typename"] != "Sensor":
        raise DagsterDevError(f"sensor: {json.dumps(result)[:2000]}")
    return result["sensorState"]["status"]


_WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
}
"""

_SENSOR_FIELDS = """
  __typename
  ... on Sensor { name sensorState { status } }
  ... on SensorNotFoundError { message }
  ... on UnauthorizedError { message }
  ... on PythonError { message }
"""

_SENSOR_QUERY = f"""
query Sensor($selector: SensorSelector!) {{
  sensorOrError(sensorSelector: $selector) {{ {_SENSOR_FIELDS} }}
}}
"""

_START_SENSOR = f"""
mutation StartSensor($selector: SensorSelector!) {{
  startSensor(sensorSelector: $selector) {{ {_SENSOR_FIELDS} }}
}}
"""

_LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

_RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""
