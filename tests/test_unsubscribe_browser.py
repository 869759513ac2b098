"""The one-click page in a real headless Chromium (Debian's, over CDP as
test_report_browser.py drives it) against a real listener: loading the page
changes nothing, pressing its button suppresses the address."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from scrubber import ledger, lists, unsubscribe
from scrubber.config import Settings
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.browser_support import Page, chromium_page, load
from tests.listener_support import start_listener
from tests.support import free_port

pytestmark = pytest.mark.browser
ADDRESS = "reader@example.com"


def suppressed(ws: Workspace) -> list[ledger.Row]:
    with open_store(ws) as store:
        return list(ledger.rows(store))


def test_the_page_changes_nothing_and_its_button_unsubscribes(
    chromium: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/pfx"
    settings = Settings(response_base_url=base, response_domain="shop.example")
    ws = init_workspace(tmp_path / "ws", settings)
    source = tmp_path / "news.txt"
    source.write_text(f"{ADDRESS}\nother@example.com\n", encoding="utf-8")
    with open_store(ws) as store:
        lists.import_files(store, "news", [source], rejects_path=tmp_path / "rejects.csv")
        secret = unsubscribe.load_secret(ws.root)
        who = unsubscribe.subscriber(store, ADDRESS, "news", secret=secret)
    url = f"{base}/u/{unsubscribe.make_token(secret, who)}"
    listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}", channels=())
    try:
        asyncio.run(_load_then_press(chromium, url, ws))
    finally:
        assert listener.stop() == 0, listener.log()
    assert "Traceback" not in listener.log()
    (row,) = suppressed(ws)
    assert (row.canonical, row.channel, row.reason, row.origin) == (
        ADDRESS,
        "one-click",
        "unsubscribe",
        "news",
    )


async def _load_then_press(chromium: str, url: str, ws: Workspace) -> None:
    async with chromium_page(chromium) as page:
        await load(page, url, 390, 844, mobile=True)
        text = await page.evaluate("document.body.innerText")
        assert "Press the button" in text
        assert await page.evaluate("document.cookie") == ""
        await page.network_idle()  # anything the page fetches or runs on load has run
        assert suppressed(ws) == []  # a scanner that loads the page changes nothing
        page.events = [e for e in page.events if e["method"] != "Page.loadEventFired"]
        await page.evaluate("document.getElementById('unsubscribe').click()")
        await page.wait_for("Page.loadEventFired")
        assert await page.evaluate("document.getElementById('done').innerText") == "Unsubscribed"
        assert _problems(page, url) == []


def _problems(page: Page, url: str) -> list[dict[str, Any]]:
    """Console errors, exceptions, failed requests, and any request but the
    page's own GET and its button's POST (the page fetches nothing)."""
    return [e for e in page.events if _is_problem(e["method"], e.get("params", {}), url)]


def _is_problem(method: str, params: dict[str, Any], url: str) -> bool:
    if method == "Network.requestWillBeSent":
        request = params["request"]
        return bool(request["url"] != url or request["method"] not in ("GET", "POST"))
    if method == "Log.entryAdded":
        return bool(params["entry"]["level"] in ("error", "warning"))
    return method in ("Runtime.exceptionThrown", "Network.loadingFailed")
