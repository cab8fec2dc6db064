"""Real-browser tests: the Dagster UI on a real run history, and the nightly HTML report, in headless
Chromium driven by selenium.

One module fixture generates a small sample, runs `flywheel run` into a private Dagster instance
(DAGSTER_HOME in a tmp dir) and serves it with `dagster-webserver` on a free loopback port. The tests
then check what a person would see: the global asset lineage with every group and asset, an asset's
latest materialisation metadata, and the report's plots. Each saves a screenshot in a tmp dir and,
when FLYWHEEL_SCREENSHOTS names a folder, there too (that is how docs/img/ is refreshed:
`FLYWHEEL_SCREENSHOTS=docs/img .venv/bin/python -m pytest tests/test_browser.py`).

Needs Debian's `chromium` and `chromium-driver`: `make test` installs them when it can
(scripts/ensure-browser.sh) and otherwise skips these tests with one line saying why (it sets
FLYWHEEL_SKIP_BROWSER=1). Run directly with pytest and no browser, they fail with what to do. CI
(`.ci/run`) sets FLYWHEEL_REQUIRE_BROWSER=1: there a missing browser fails, never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-proxy-server", "--hide-scrollbars"]
WIDTH, HEIGHT = 1400, 900
REPORT_HEIGHT = 1250  # tall enough for the report's tables and its first plot
START, DAYS = date(2026, 3, 1), 8
LAST_DAY = "2026-03-08"
SERVER_START_TIMEOUT = 120  # s, for dagster-webserver to answer
RENDER_TIMEOUT = 60  # s, for React to render a page once loaded
RUN_TIMEOUT = 600  # s, for `flywheel run` on the small sample

# Importing the definitions warns that backfill_policy is beta; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore:.*backfill_policy.*")


def _require_browser() -> None:
    """Skip when asked to; otherwise fail (not skip) with what to do when the browser is missing."""
    if os.environ.get("FLYWHEEL_SKIP_BROWSER") == "1" and os.environ.get("FLYWHEEL_REQUIRE_BROWSER") != "1":
        pytest.skip("browser tests skipped: FLYWHEEL_SKIP_BROWSER=1 (make test sets it when no Chromium can be installed)")
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(f"browser tests need Debian's chromium and chromium-driver, missing: {', '.join(missing)}. "
                    f"Run .ci/run (it installs them: apt-get install chromium chromium-driver), or set "
                    f"FLYWHEEL_SKIP_BROWSER=1 to skip these tests.", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("browser tests need selenium (in the `test` extra): run `make install` or .ci/run, or set "
                    "FLYWHEEL_SKIP_BROWSER=1 to skip these tests.", pytrace=False)


# ---------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium with a fresh profile and a WIDTH x HEIGHT viewport."""
    _require_browser()
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="flywheel-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS + [f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        _viewport(driver, WIDTH, HEIGHT)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    """Where screenshots go: a tmp dir, and $FLYWHEEL_SCREENSHOTS when set."""
    folders = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("FLYWHEEL_SCREENSHOTS"):
        folders.append(Path(os.environ["FLYWHEEL_SCREENSHOTS"]))
        folders[-1].mkdir(parents=True, exist_ok=True)
    return folders


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict[str, str]:
    """A small generated sample run by `flywheel run` into a private Dagster instance; the environment."""
    from flywheel.generate import generate

    root = tmp_path_factory.mktemp("browser_sample")
    home = root / "dagster_home"
    home.mkdir()
    # No telemetry (no network here) and no "join the community" dialog over the pages.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    generate(root / "landing", days=DAYS, events_per_day=400, seed=3, start=START, progress=False)
    env = dict(os.environ, FLYWHEEL_LANDING=str(root / "landing"), FLYWHEEL_STORE=str(root / "store"),
               FLYWHEEL_DB=str(root / "flywheel.duckdb"), FLYWHEEL_PUBLISH=str(root / "publish"),
               DAGSTER_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.run([*_script("flywheel", "assets.cli"), "run", "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, f"flywheel run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert f"ran event days {START} .. {LAST_DAY}" in proc.stdout, proc.stdout[-3000:]
    return env


@pytest.fixture(scope="module")
def dagster_ui(sample, tmp_path_factory):
    """`dagster-webserver` on a free loopback port over the sample's instance; its base URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("webserver") / "webserver.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*_script("dagster-webserver", "dagster_webserver"), "-w", "workspace.yaml",
                                 "-h", "127.0.0.1", "-p", str(port)],
                                cwd=ROOT, env=sample, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: its code server ends with it
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(base, proc, log_path)
        yield base
    finally:
        _stop(proc)


# ---------------------------------------------------------------------------------------------------
# tests


def test_asset_graph_shows_every_group_and_asset(browser, dagster_ui, shots):
    from selenium.webdriver.common.by import By

    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = sorted({graph.get(k).group_name for k in graph.get_all_asset_keys()})
    names = sorted({k.path[-1] for k in graph.get_all_asset_keys()})
    assert {"ingest", "outcomes", "failures", "signals", "publish"} <= set(groups)

    # The global lineage (route /asset-groups) with every group expanded: the explorer keeps the
    # expanded groups in the `expanded` query parameter, as group ids `global@global:<group>`.
    expanded = ",".join(f"global@global:{g}" for g in groups)
    browser.get(f"{dagster_ui}/asset-groups?expanded={expanded}")
    viewport = _wait(browser, lambda d: _graph_viewport(d, groups + names), "the asset graph with every group and asset")
    text = viewport.text
    assert all(g in text.split() for g in groups), text
    assert all(n in text.split() for n in names), text
    assert "Global asset lineage" in browser.find_element(By.TAG_NAME, "body").text

    # For the picture: hide the main navigation and the asset sidebar, then re-fit the graph to the
    # wider viewport (the explorer autocenters on a double click on its background).
    _collapse_navigation(browser)
    for button in browser.find_elements(By.XPATH, "//button[.//*[@aria-label='panel_show_right']]"):
        if button.is_displayed():
            button.click()  # the sidebar toggle beside "Jump to..."
    viewport = _graph_viewport(browser, groups + names)
    assert viewport, "the graph went away when the sidebar closed"
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))", viewport)
    _wait_still(browser, f"//*[@data-svg-viewport]//*[not(*) and normalize-space()='{names[0]}']")
    _screenshot(browser, shots, "lineage.png")


def test_asset_page_shows_latest_materialisation_metadata(browser, dagster_ui, shots):
    from selenium.webdriver.common.by import By

    # An asset's page is /assets/<key path joined by '/'>; its Overview tab shows the latest
    # materialisation and its metadata.
    browser.get(f"{dagster_ui}/assets/outcomes/daily_rates")
    row = _wait(browser, lambda d: _metadata_row(d, "rates_last_day", "kb_answer"),
                "the rates_last_day metadata of outcomes/daily_rates")
    # The Markdown table of the day's per-scenario rates, rendered as a table.
    assert row.find_elements(By.XPATH, ".//table//td[normalize-space()='kb_answer']"), row.text
    assert "%" in row.text
    assert LAST_DAY in _metadata_row(browser, "last_day", LAST_DAY).text
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Latest materialization" in body and "daily_rates" in body

    _collapse_navigation(browser)
    _wait_still(browser, "//tr[td[normalize-space()='rates_last_day']]")
    _screenshot(browser, shots, "asset.png")

    # The failure clusters' asset shows each scenario's top clusters of the last day as a table.
    browser.get(f"{dagster_ui}/assets/failures/cluster_daily")
    row = _wait(browser, lambda d: _metadata_row(d, "top_clusters_last_day", "kb_answer"),
                "the top_clusters_last_day metadata of failures/cluster_daily")
    assert row.find_elements(By.XPATH, ".//table//th[normalize-space()='label']"), row.text


def test_report_plots_render(browser, sample, shots):
    from selenium.webdriver.common.by import By

    latest = Path(sample["FLYWHEEL_PUBLISH"]) / "report" / "latest.html"
    assert latest.is_file(), f"no report at {latest}"
    _viewport(browser, WIDTH, REPORT_HEIGHT)
    try:
        browser.get(latest.as_uri())
        _wait(browser, lambda d: d.execute_script(
            "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"),
            "the report and its images to load")
        plots = browser.execute_script(
            "return [...document.querySelectorAll('img.plot')].map(i => ({alt: i.alt, natural: i.naturalWidth,"
            " shown: i.getBoundingClientRect().width}))")
        assert len(plots) >= 5, plots
        broken = [p["alt"] for p in plots if not (p["natural"] > 0 and p["shown"] > 0)]
        assert not broken, f"plots that did not render: {broken}"
        headings = [h.text.strip() for h in browser.find_elements(By.CSS_SELECTOR, "h1, h2")]
        for expected in ("flywheel nightly report", "Scenarios", "Decisions awaiting approval", "Drift alerts",
                         "Outcome rates over time", "Reliability diagrams", "Top failure clusters"):
            assert expected in headings, headings
        assert "daily share of the top failure clusters" in [p["alt"] for p in plots]
        assert LAST_DAY in browser.find_element(By.TAG_NAME, "body").text
        _screenshot(browser, shots, "report.png")
    finally:
        _viewport(browser, WIDTH, HEIGHT)


# ---------------------------------------------------------------------------------------------------
# helpers


def _script(name: str, module: str) -> list[str]:
    """The console script beside this Python (the venv's), else `python -m module`."""
    path = Path(sys.executable).parent / name
    return [str(path)] if path.exists() else [sys.executable, "-m", module]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(base: str, proc: subprocess.Popen, log_path: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
        try:
            with opener.open(f"{base}/server_info", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"dagster-webserver did not answer within {SERVER_START_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """End the webserver and its code server (the process group it leads), politely then firmly."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything of the group still there
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)


def _viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def _wait(driver, condition, what: str, timeout: float = RENDER_TIMEOUT):
    """Poll until condition(driver) is truthy; on timeout fail with what was awaited and the page text."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    try:
        return wait.until(condition)
    except TimeoutException:
        try:
            text = driver.execute_script("return document.body ? document.body.innerText : ''")[:3000]
        except WebDriverException as exc:
            text = f"(no page text: {exc})"
        pytest.fail(f"timed out after {timeout} s waiting for {what} at {driver.current_url}; the page shows:\n{text}")


def _graph_viewport(driver, words: list[str]):
    """The graph's viewport element once every word labels something in it, else None."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "[data-svg-viewport]")
    if not found:
        return None
    shown = set(found[0].text.split())
    return found[0] if all(w in shown for w in words) else None


def _metadata_row(driver, key: str, needle: str):
    """The metadata table row of `key` once it shows `needle`, else None."""
    from selenium.webdriver.common.by import By

    for row in driver.find_elements(By.XPATH, f"//tr[td[normalize-space()='{key}']]"):
        if needle in row.text:
            return row
    return None


def _wait_still(driver, xpath: str, timeout: float = 10) -> None:
    """Wait until the element at xpath stops moving (layout transitions and zoom animations done)."""
    from selenium.webdriver.common.by import By

    last, still = None, 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = driver.find_elements(By.XPATH, xpath)
        rect = found[0].rect if found else None
        still = still + 1 if rect is not None and rect == last else 0
        if still >= 4:
            return
        last = rect
        time.sleep(0.1)
    pytest.fail(f"{xpath} did not settle within {timeout} s")


def _collapse_navigation(driver) -> None:
    """Collapse Dagster's main navigation to icons (more room for the page); cosmetic only."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[contains(., 'Hide navigation')]"
                                                 "[.//*[@aria-label='panel_show_right']]"):
        if button.is_displayed():
            button.click()
            return


def _screenshot(driver, folders: list[Path], name: str) -> None:
    first = folders[0] / name
    assert driver.save_screenshot(str(first)), f"could not save {first}"
    for folder in folders[1:]:
        shutil.copyfile(first, folder / name)
