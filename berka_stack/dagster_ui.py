"""A client of the Dagster webserver's GraphQL API: code location, sensors, runs.

`DagsterDev` (berka_stack.dev) is this client plus the `dagster dev` process it talks to. Runs are
launched and followed with dagster-graphql's `DagsterGraphQLClient`; what that client has no
call for (the code location's load status, sensors, the UI's one-time dialog, the tests' own
queries) is posted with gql, the GraphQL library it is built on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster import AssetKey
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

# gql logs every request and answer at INFO: a waiting loop would fill the launcher's log.
logging.getLogger("gql.transport.requests").setLevel(logging.WARNING)

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

    @cached_property
    def _runs(self) -> DagsterGraphQLClient:
        address = urlsplit(self.url)
        return DagsterGraphQLClient(address.hostname or "127.0.0.1", port_number=address.port,
                                    timeout=60)

    @cached_property
    def _queries(self) -> Client:
        return Client(transport=RequestsHTTPTransport(url=f"{self.url}/graphql", timeout=60))

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Post a query; its `data`, or DagsterDevError with the server's errors."""
        request = GraphQLRequest(query, variable_values=dict(variables or {}))
        try:
            return self._queries.execute(request)
        except TransportQueryError as error:
            raise DagsterDevError(f"GraphQL errors: {str(error.errors)[:2000]}") from error
        except TransportError as error:
            raise DagsterDevError(f"GraphQL: {str(error)[:2000]}") from error

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
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch (queue) a run of a job, optionally an asset subset of it; returns its id."""
        try:
            return self._runs.submit_job_execution(
                job_name, repository_location_name=self.location, repository_name=REPOSITORY,
                run_config=dict(run_config or {}), tags=dict(tags or {}),
                asset_selection=None if asset_keys is None else [AssetKey(k) for k in asset_keys],
            )
        except DagsterGraphQLClientError as error:
            raise DagsterDevError(f"launch of {job_name}: {error}") from error

    def run_status(self, run_id: str) -> str:
        try:
            return self._runs.get_run_status(run_id).value
        except DagsterGraphQLClientError as error:
            raise DagsterDevError(f"run {run_id}: {error}") from error

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
        response = requests.get(f"{self.url}/server_info", timeout=5)
        return response.ok and "dagster_webserver_version" in response.json()

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
        raise DagsterDevError(f"sensor: {str(dict(result))[:2000]}")
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
