"""The console in a real browser: Debian's chromium driven by Selenium through chromium-driver.

``advertisex up`` runs on 127.0.0.1 over the generated lake; the test opens every page,
checks the numbers shown against ``report … --format json``, runs a query, clicks
through a replay, and saves a screenshot of each page under ``test-artifacts/console/``
(or ``$ADVERTISEX_TEST_ARTIFACTS``). Skipped where chromium, chromium-driver or Selenium
are missing (``make services`` installs them when it runs as root).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import chromium
from tests.collector.collector_helpers import ServerProcess
from tests.console.conftest import BIDI, SCRIPT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ARTIFACTS = Path(
    os.environ.get(
        "ADVERTISEX_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
    )
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path, "--window-size=1280,900", console_log=True) as driver:
        yield driver


def test_every_page_in_a_browser(
    browser: Any, lake_copy: Callable[[], Path], cli: Callable[..., Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    def wait_for(element_id: str) -> Any:
        """The element, once the page that a click loads has it."""
        try:
            return WebDriverWait(browser, 30).until(
                expected_conditions.presence_of_element_located((By.ID, element_id))
            )
        except Exception:
            browser.save_screenshot(str(shots / f"failed-waiting-for-{element_id}.png"))
            raise AssertionError(
                f"no #{element_id} on {browser.current_url}:\n{browser.page_source}"
            ) from None

    data_dir = lake_copy()
    # The "fix" that lets the future-stamped record through replay: a wider skew bound.
    up = ServerProcess(data_dir, verb="up", ADVERTISEX_PROCESSOR__FUTURE_SKEW_SECONDS="10000000000")
    up.start()
    shots = ARTIFACTS / "console"
    shots.mkdir(parents=True, exist_ok=True)

    def shoot(name: str) -> None:
        """A screenshot for the artifacts, best effort: under load Chromium once answered one
        with "timeout from aborted by navigation" right after a page had loaded; the page's
        own assertions say whether it is right, a picture of it is only for people."""
        from selenium.common.exceptions import WebDriverException

        for _attempt in range(2):
            try:
                browser.save_screenshot(str(shots / f"{name}.png"))
                return
            except WebDriverException:
                WebDriverWait(browser, 30).until(
                    lambda driver: driver.execute_script("return document.readyState") == "complete"
                )

    def visit(path: str, name: str) -> None:
        browser.get(up.url + path)
        shoot(name)
        problems = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not [p for p in problems if "favicon" not in p], problems  # CSP reports land here

    try:
        visit("/", "overview")
        assert browser.find_elements(By.CSS_SELECTOR, "figure.chart[data-drawn=true] canvas")
        cards = browser.find_elements(By.CSS_SELECTOR, "#sources article")
        assert [c.get_attribute("data-source") for c in cards] == ["impressions", "clicks", "bids"]

        days = "from=2026-11-20&to=2026-11-21"
        visit(f"/campaigns?{days}&model=first&sort=impressions&dir=desc", "campaigns")
        code, out, err = cli(
            data_dir, "report", "campaigns", "--from", "2026-11-20", "--to", "2026-11-21",
            "--model", "first", "--format", "json",
        )  # fmt: skip
        assert code == 0, err
        expected = sorted(json.loads(out), key=lambda r: -r["impressions"])
        shown = browser.find_elements(By.CSS_SELECTOR, "#campaigns tbody tr")
        assert len(shown) == len(expected) > 0
        for row, want in zip(shown, expected, strict=True):
            cells = {
                c.get_attribute("data-col"): c.text for c in row.find_elements(By.TAG_NAME, "td")
            }
            assert int(cells["impressions"].replace(",", "")) == want["impressions"]
            assert int(cells["clicks"].replace(",", "")) == want["clicks"]
        first = shown[0].find_element(By.CSS_SELECTOR, "td[data-col=campaign_id] a")
        first.click()
        wait_for("campaign-id")
        shoot("campaign")
        assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart[data-drawn=true]")) == 5

        visit("/quarantine", "quarantine")
        raws = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre.raw")]
        assert SCRIPT in raws  # shown as text: no script ran, no alert opened
        assert any(BIDI.replace("\u200b", "") in r.replace("\u200b", "") for r in raws)
        assert not browser.find_elements(By.CSS_SELECTOR, "main img")
        browser.find_element(By.NAME, "reason").send_keys("timestamp_in_future")
        browser.find_element(By.CSS_SELECTOR, "form[action='/quarantine'] button").click()
        WebDriverWait(browser, 30).until(expected_conditions.url_contains("timestamp_in_future"))
        browser.find_element(By.ID, "replay").click()
        preview = wait_for("preview")
        assert int(preview.get_attribute("data-selected")) >= 1
        shoot("replay-confirm")
        browser.find_element(By.ID, "confirm").click()
        assert "Done: batch" in wait_for("result").text
        shoot("replay-done")

        visit("/sql", "sql")
        box = browser.find_element(By.ID, "sql")
        box.clear()
        box.send_keys("select campaign_id, count(*) as n from curated.impressions group by all")
        browser.find_element(By.ID, "run").click()
        assert wait_for("result").find_elements(By.CSS_SELECTOR, "tbody tr")
        shoot("sql-result")

        visit("/alerts", "alerts")
        assert browser.find_element(By.ID, "history")
        visit("/lake", "lake")
        tables = browser.find_elements(By.CSS_SELECTOR, "#tables tbody tr")
        assert any("curated.impressions" in t.text for t in tables)
        assert up.stop() == 0, up.log()
    finally:
        if up.process is not None and up.process.poll() is None:
            up.process.kill()
