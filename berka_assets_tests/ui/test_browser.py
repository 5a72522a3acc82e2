"""The Dagster UI in a real browser: headless Debian Chromium driven by selenium + chromedriver.

Renders the asset graph of every group and reads the drawn nodes and edges back from the SVG,
then checks that the Kafka sensor's switch shows it running. Screenshots go to
test-artifacts/ui/*.png.
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

from berka_assets.ui.dev import MARKER_VARIABLE, DagsterDev, processes_with_environment
from berka_assets_tests.ui.conftest import chromium_and_driver
from berka_assets_tests.ui.expected import ASSETS, EDGES, GROUPS, short

pytestmark = pytest.mark.integration

# The flags this machine needs: no sandbox as root, and no background connections to Google.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1200",
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

    return wait_for(settled, what=f"the asset graph with {sorted(expected_names)}")


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
    wait_for(lambda: all(group in browser.find_element(By.TAG_NAME, "body").text
                         for group in GROUPS), what="the group list of the lineage page")
    browser.save_screenshot(str(artifacts / "asset-lineage.png"))


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
