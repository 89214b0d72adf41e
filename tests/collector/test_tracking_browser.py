"""A publisher page in a real browser: Debian's chromium (Selenium, chromium-driver) loads
a page with the pixel and a signed link, the link is clicked, and exactly one impression
and one click of one visitor land. Skipped where chromium, chromium-driver or Selenium
are missing (``make services`` installs them when it runs as root)."""

from __future__ import annotations

import html
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from collector_helpers import ServerProcess

import advertisex
from advertisex.collector.tracking.signing import sign_url
from tests.chromium import chromium

pytestmark = [pytest.mark.slow, pytest.mark.integration]
# Headless chromium says "HeadlessChrome", which the invalid-traffic list rightly calls a
# bot; the visitor here plays a person, with the agent a desktop chromium sends.
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path, f"--user-agent={AGENT}") as driver:
        yield driver


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A publisher's and an advertiser's pages, served from 127.0.0.1 on their own port
    (same site as the collector for the browser's cookie rules, another origin)."""
    root = tmp_path / "site"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_with_a_pixel_and_a_link_in_a_real_browser(
    browser: Any, site: tuple[Path, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    root, site_url = site
    collector = ServerProcess(
        tmp_path / "data", ADVERTISEX_COLLECTOR__TRACKING__CLICK_SECRET="k"
    ).start()
    base = collector.url
    pixel = f"{base}/v1/i?campaign_id=cmp-1&ad_creative_id=cr-1&impression_id=imp-b1"
    link = sign_url(
        f"{base}/v1/c",
        {"campaign_id": "cmp-1", "ad_creative_id": "cr-1", "impression_id": "imp-b1",
         "to": f"{site_url}/landing.html?offer=1"},
        "k",
    )  # fmt: skip
    (root / "landing.html").write_text("<!doctype html><title>shop</title><p id=shop>Sale</p>")
    (root / "page.html").write_text(
        "<!doctype html><title>news</title><p>News of the day.</p>"
        f'<img id=pixel src="{html.escape(pixel)}" width=1 height=1 alt="">'
        f'<a id=ad href="{html.escape(link)}">Sale!</a>'
    )
    try:
        browser.get(f"{site_url}/page.html")
        WebDriverWait(browser, 30).until(
            lambda b: b.execute_script("return document.getElementById('pixel').complete")
        )
        # A broken image has no natural size: the pixel drew (a 1×1 GIF).
        assert browser.execute_script("return document.getElementById('pixel').naturalWidth") == 1
        browser.find_element(By.ID, "ad").click()
        WebDriverWait(browser, 30).until(expected_conditions.url_contains("landing.html"))
        landed_at = urlsplit(browser.current_url)
        query = parse_qs(landed_at.query)
        assert query["offer"] == ["1"] and query["adx_click_id"][0].startswith("c1.")
    finally:
        assert collector.stop() == 0, collector.log()

    ax = advertisex.open(data_dir=collector.data_dir)
    ax.process()
    [impression] = ax.query("select * from curated.impressions").to_pylist()
    [click] = ax.query("select * from curated.clicks").to_pylist()
    assert (impression["impression_id"], click["impression_id"]) == ("imp-b1", "imp-b1")
    assert click["event_id"] == query["adx_click_id"][0]
    # One visitor: the pixel's cookie came back with the click.
    assert impression["user_id"] == click["user_id"] and impression["user_id"].startswith("u-")
    assert (impression["website"], impression["user_agent"]) == ("127.0.0.1", AGENT)
