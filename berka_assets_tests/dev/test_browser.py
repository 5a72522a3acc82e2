"""The Dagster UI in a real browser: headless Debian Chromium driven by selenium + chromedriver.

Renders the asset graph of every group and reads the drawn nodes and edges back from the SVG,
then checks that the Kafka sensor's switch shows it running. Screenshots go to
var/screenshots/ui/*.png (listed in the README).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from berka_assets_tests.dev.conftest import ARTIFACTS, chromium_and_driver
from berka_assets_tests.dev.expected import ASSETS, EDGES, GROUPS, short
from berka_stack.dev import MARKER_VARIABLE, DagsterDev, processes_with_environment

pytestmark = pytest.mark.integration

# The flags this machine needs: no sandbox as root, and no background connections to Google.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Tall enough for every group's graph at the UI's default zoom: nodes outside the view are
    # not drawn at all.
    "--window-size=1920,2600",
)

# The asset graph page draws nodes as <foreignObject>s and edges as <path marker-end=...> in one
# SVG; this returns both with their geometry.
READ_GRAPH = """
const svg = document.querySelector('svg[class*="svgContainer"]');
if (!svg) return null;
const nodes = [...svg.querySelectorAll('foreignObject')].map(fo => ({
  name: (fo.querySelector('[data-tooltip]')?.getAttribute('data-tooltip')
         || fo.textContent).trim(),
  x: +fo.getAttribute('x'), y: +fo.getAttribute('y'),
  w: +fo.getAttribute('width'), h: +fo.getAttribute('height'),
}));
const edges = [...svg.querySelectorAll('path[marker-end]')].map(p => {
  const n = p.getAttribute('d').match(/-?[0-9.]+/g).map(Number);
  return {x1: n[0], y1: n[1], x2: n[n.length - 2], y2: n[n.length - 1]};
});
return {nodes, edges};
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, artifacts: Path,
            dagster_dev: DagsterDev) -> Iterator[webdriver.Chrome]:
    chromium, chromedriver = chromium_and_driver()
    dagster_dev.dismiss_welcome_dialog()  # else a modal covers the first page
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    # Marks chromedriver and every browser process, to prove none is left behind.
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER_VARIABLE: marker, "SE_OFFLINE": "true"}
    service = Service(executable_path=chromedriver, env=env,
                      log_output=str(artifacts / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            deadline = time.monotonic() + 10
            while processes_with_environment(MARKER_VARIABLE, marker) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.2)
            left = processes_with_environment(MARKER_VARIABLE, marker)
            for pid in left:
                os.kill(pid, 9)
            assert not left, f"browser processes {left} outlived driver.quit()"


def wait_for(condition, timeout: float = 60.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except WebDriverException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)


def drawn_graph(driver: webdriver.Chrome, expected_names: set[str]) -> dict:
    """The SVG graph once it shows `expected_names` and its layout stopped changing."""
    previous: list[dict | None] = [None]

    def settled() -> dict | None:
        graph = driver.execute_script(READ_GRAPH)
        if not graph or not expected_names <= {node["name"] for node in graph["nodes"]}:
            return None
        stable = graph == previous[0]
        previous[0] = graph
        return graph if stable else None

    try:
        return wait_for(settled, what=f"the asset graph with {sorted(expected_names)}")
    except AssertionError as error:
        graph = driver.execute_script(READ_GRAPH) or {"nodes": []}
        drawn = sorted(node["name"] for node in graph["nodes"])
        driver.save_screenshot(str(ARTIFACTS / "asset-graph-timeout.png"))
        raise AssertionError(f"{error}; drawn: {drawn}") from None


def edges_by_name(graph: dict) -> set[tuple[str, str]]:
    """Match each drawn edge to the node boxes at its two ends (start: right side of the
    source; end: an arrow head just left of the target)."""

    def at(x: float, y: float, side: str) -> str:
        matches = [
            node["name"] for node in graph["nodes"]
            if node["y"] - 1 <= y <= node["y"] + node["h"] + 1
            and (abs(node["x"] + node["w"] - x) <= 3 if side == "right"
                 else 0 <= node["x"] - x <= 10)
        ]
        assert len(matches) == 1, f"edge end ({x}, {y}) matches {matches}"
        return matches[0]

    return {(at(e["x1"], e["y1"], "right"), at(e["x2"], e["y2"], "left"))
            for e in graph["edges"]}


@pytest.mark.parametrize("group", GROUPS)
def test_asset_group_graph_renders(
    dagster_dev: DagsterDev, browser: webdriver.Chrome, artifacts: Path, group: str
) -> None:
    members = {key for key, (g, _) in ASSETS.items() if g == group}
    edges = {(a, b) for a, b in EDGES if a in members or b in members}
    names = {short(key) for edge in edges for key in edge} | {short(key) for key in members}

    browser.get(f"{dagster_dev.url}/locations/{dagster_dev.location}/asset-groups/{group}")
    graph = drawn_graph(browser, names)
    browser.save_screenshot(str(artifacts / f"asset-group-{group}.png"))

    drawn = edges_by_name(graph)
    expected = {(short(a), short(b)) for a, b in edges}
    assert expected <= drawn, f"missing edges: {expected - drawn}"
    # Nothing drawn that the code location does not define (neighbours of other groups
    # included: the page shows them as links).
    all_edges = {(short(a), short(b)) for a, b in EDGES}
    assert drawn <= all_edges, f"unexpected edges: {drawn - all_edges}"


def test_global_lineage_lists_the_groups(
    dagster_dev: DagsterDev, browser: webdriver.Chrome, artifacts: Path
) -> None:
    browser.get(f"{dagster_dev.url}/asset-groups")

    def labels() -> set[str]:
        # Whole lines: a group's name is also a part of asset names (source -> source_files).
        return {line.strip() for line in browser.find_element(By.TAG_NAME, "body").text
                .splitlines()}

    wait_for(lambda: set(GROUPS) <= labels(), what="the group labels of the lineage page")
    browser.save_screenshot(str(artifacts / "asset-lineage.png"))
    missing = set(GROUPS) - labels()
    assert not missing, f"group labels not drawn: {sorted(missing)}"


def _switch_is_on(driver: webdriver.Chrome, xpath: str) -> bool | None:
    switches = driver.find_elements(By.XPATH, xpath)
    return switches[0].is_selected() if switches else None


def test_kafka_sensor_shows_running(
    dagster_dev: DagsterDev, kafka_sensor: str, browser: webdriver.Chrome, artifacts: Path
) -> None:
    # The automation overview: the sensor's row, with its on/off switch.
    browser.get(f"{dagster_dev.url}/automation")
    row_switch = (
        f"//*[normalize-space(text())='{kafka_sensor}']"
        "/ancestor::*[.//label[contains(@class, 'formatSwitch')]][1]"
        "//label[contains(@class, 'formatSwitch')]/input[@type='checkbox']"
    )
    assert wait_for(lambda: _switch_is_on(browser, row_switch),
                    what=f"{kafka_sensor} switched on in /automation")
    browser.save_screenshot(str(artifacts / "automation.png"))

    # The sensor's own page: the switch in the "Running" row.
    browser.get(f"{dagster_dev.url}/locations/{dagster_dev.location}/sensors/{kafka_sensor}")
    running_switch = ("//tr[td[normalize-space()='Running']]"
                      "//label[contains(@class, 'formatSwitch')]/input[@type='checkbox']")
    assert wait_for(lambda: _switch_is_on(browser, running_switch),
                    what=f"the Running switch of {kafka_sensor}")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "microbatch_job" in body
    browser.save_screenshot(str(artifacts / "kafka-sensor.png"))


_RUNS_OF_ASSET = """
query Runs {
  runsOrError(limit: 20) { ... on Runs { results { runId status assetSelection { path } } } }
}
"""


def _runs_selecting(dev: DagsterDev, path: list[str]) -> dict[str, str]:
    """run id -> status of the runs whose asset selection contains `path`."""
    result = dev.graphql(_RUNS_OF_ASSET)
    return {run["runId"]: run["status"] for run in result["runsOrError"]["results"]
            if {"path": path} in (run["assetSelection"] or [])}


def _button(driver: webdriver.Chrome, label: str):
    """The enabled button whose text starts with `label` ("Materialize all (17)")."""
    buttons = [b for b in driver.find_elements(By.TAG_NAME, "button")
               if b.text.strip().startswith(label) and b.is_enabled()]
    return buttons[0] if buttons else None


def _click_and_confirm(driver: webdriver.Chrome, dev: DagsterDev, label: str,
                       path: list[str], before: set[str]) -> set[str]:
    """Click the button; if the UI asks "Are you sure?" (upstream never materialized, as on
    a fresh stack), confirm as a user would. Returns the runs it launched."""
    wait_for(lambda: _button(driver, label), what=f"the {label} button").click()

    def launched_or_asked():
        launched = set(_runs_selecting(dev, path)) - before
        if launched:
            return launched
        confirm = _button(driver, "Confirm")
        if confirm is not None:
            confirm.click()
        return None

    return wait_for(launched_or_asked, what=f"a run launched by {label}")


def _materialize_from(driver: webdriver.Chrome, dev: DagsterDev, page: str, label: str,
                      path: list[str], picture: Path, timeout: float) -> None:
    """Open `page`, click `label` (confirming if asked), wait for the one run it launched to
    succeed; a picture of the page either way."""
    before = set(_runs_selecting(dev, path))
    driver.get(f"{dev.url}{page}")
    try:
        (run_id,) = _click_and_confirm(driver, dev, label, path, before)
    except BaseException:
        driver.save_screenshot(str(picture.with_stem(picture.stem + "-failed")))
        raise
    status = dev.wait_for_run(run_id, timeout=timeout)
    driver.get(f"{dev.url}/runs/{run_id}")
    wait_for(lambda: any(state in driver.find_element(By.TAG_NAME, "body").text
                         for state in ("Success", "Failure", "Canceled")), what="the run page")
    driver.save_screenshot(str(picture))
    assert status == "SUCCESS", f"run {run_id}: {status}; see {dev.log_path}"


def test_materialize_button_of_a_trend_runs_it(
    dagster_dev: DagsterDev, browser: webdriver.Chrome, artifacts: Path
) -> None:
    """A user clicks "Materialize" on hive/monthly_trend: with no config to type, a run
    rebuilds the trend from the committed data and succeeds."""
    _materialize_from(browser, dagster_dev, "/assets/hive/monthly_trend", "Materialize",
                      ["hive", "monthly_trend"], artifacts / "materialize-monthly-trend.png", 300)


def test_an_asset_page_shows_its_column_schema(
    dagster_dev: DagsterDev, browser: webdriver.Chrome, artifacts: Path
) -> None:
    browser.get(f"{dagster_dev.url}/assets/mysql/account")
    columns = ("account_id", "district_id", "frequency", "date")
    wait_for(lambda: all(c in browser.find_element(By.TAG_NAME, "body").text for c in columns),
             what="the columns of mysql/account")
    body = browser.find_element(By.TAG_NAME, "body").text
    # The types of the one schema definition (berka/schema.py), as MySQL has them.
    assert all(kind in body for kind in ("INT", "VARCHAR(", "DATE")), body[:2000]
    browser.save_screenshot(str(artifacts / "asset-column-schema.png"))


def test_materialize_all_succeeds(
    dagster_dev: DagsterDev, browser: webdriver.Chrome, artifacts: Path
) -> None:
    """"Materialize all" on the global lineage: every materializable asset, no config typed,
    one run, and it succeeds (reference tables, catch-up micro-batch, report, synthetic set)."""
    _materialize_from(browser, dagster_dev, "/asset-groups", "Materialize all",
                      ["reports", "trends_report"],  # in every "all" selection
                      artifacts / "materialize-all.png", 480)
