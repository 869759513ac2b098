"""The HTML report in a real headless Chromium, driven over the DevTools protocol.

Chromium is Debian's (scripts/provision-chromium.sh). The test talks CDP over
aiohttp's websocket client: it records console messages, uncaught
exceptions, failed and blocked requests, then checks what the page shows on
a desktop and a phone viewport, takes screenshots, and prints it to PDF.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from scrubber.workspace import open_store
from tests.browser_support import chromium_page, load, screenshot
from tests.report_support import TIMELY, Seeded, add_parts, make_batch, make_workspace, record_pings
from tests.support import run_cli

pytestmark = pytest.mark.browser
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report_html(tmp_path: Path) -> tuple[Seeded, Path]:
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace)
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, TIMELY)
        add_parts(store, data.batch_id, posted=2, total=3)
    target = tmp_path / "report.html"
    result = run_cli("report", data.batch_id, "-o", str(target), workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    return data, target


def test_html_report_in_headless_chromium(
    chromium: str, report_html: tuple[Seeded, Path], tmp_path: Path
) -> None:
    data, target = report_html
    embedded = _embedded_json(target)
    asyncio.run(_check_page(chromium, target.as_uri(), data, embedded, tmp_path))


async def _check_page(
    chromium: str, url: str, data: Seeded, doc: dict[str, Any], shots: Path
) -> None:
    async with chromium_page(chromium) as page:
        await load(page, url, 1280, 1600, mobile=False)
        text = await page.evaluate("document.body.innerText")
        assert f"scrubber compliance report: batch {data.batch_id}" in text
        summary = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#summary tr')]"
            ".map(r => [r.cells[0].innerText, r.cells[1].innerText]))"
        )
        assert summary["addresses hashed"] == str(doc["addresses_hashed"]) == "24"
        assert summary["pings received"] == str(len(TIMELY))
        assert summary["addresses suppressed"] == str(doc["suppressions"]["count"]) == "4"
        assert summary["parts posted"] == "2 of 3"
        assert await page.evaluate("document.getElementById('verdict').innerText") == "PASS"
        bars = await page.evaluate("document.querySelectorAll('#timeline svg rect').length")
        assert bars == sum(
            (b["accepted"] > 0) + (b["other"] > 0) + (b["suppressed"] > 0) for b in doc["timeline"]
        )
        visible = await page.evaluate(
            "[...document.querySelectorAll('#timeline svg rect')]"
            ".every(r => r.getBoundingClientRect().height > 0)"
        )
        assert visible is True
        for address in data.addresses:
            assert address not in text
        desktop = await screenshot(page, shots / "desktop.png")
        assert desktop.startswith(PNG) and len(desktop) > 10_000

        await load(page, url, 390, 844, mobile=True)
        overflow = await page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 390, "the page scrolls sideways on a phone"
        font = await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert font >= 14
        phone = await screenshot(page, shots / "phone.png")
        assert phone.startswith(PNG)

        pdf = base64.b64decode((await page.call("Page.printToPDF"))["data"])
        assert pdf.startswith(b"%PDF")
        assert page.problems() == []


def _embedded_json(path: Path) -> dict[str, Any]:
    from scrubber.report.sign import extract

    fmt, payload = extract(path.read_text("utf-8"))
    assert fmt == "html"
    document: dict[str, Any] = json.loads(payload)
    return document


def test_the_page_check_catches_errors_and_requests(
    chromium: str, report_html: tuple[Seeded, Path]
) -> None:
    """The detector itself: an injected fetch and script error must show up."""
    _, target = report_html
    page_text = target.read_text("utf-8")
    broken = target.with_name("broken.html")
    injected = '<img src="http://127.0.0.1:9/x.png"><script>undefinedCall()</script></main>'
    broken.write_text(page_text.replace("</main>", injected), encoding="utf-8")
    # The page's own CSP blocks both (reported as console errors)...
    blocked = asyncio.run(_problems_of(chromium, broken.as_uri()))
    assert any("blocked" in p["params"].get("entry", {}).get("text", "") for p in blocked)
    # ... and without it, the script error and the request show up too.
    open_page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", broken.read_text())
    broken.write_text(open_page, encoding="utf-8")
    methods = {p["method"] for p in asyncio.run(_problems_of(chromium, broken.as_uri()))}
    assert {"Runtime.exceptionThrown", "Network.requestWillBeSent"} <= methods, methods


async def _problems_of(chromium: str, url: str) -> list[dict[str, Any]]:
    async with chromium_page(chromium) as page:
        await load(page, url, 800, 600, mobile=False)
        await page.network_idle()  # late errors and requests have come by then
        return page.problems()


def test_one_hour_timeline_and_ledger_page_in_chromium(chromium: str, tmp_path: Path) -> None:
    """A batch whose pings fall in one hour: minute bars, distinct axis labels that do
    not overlap, the legend explained; the ledger page: no sideways scroll on a phone."""
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace)
    plan: list[tuple[str, str, int, float | None]] = [
        ("http", "accepted", 0, 30.0),
        ("http", "accepted", 0, 900.0),
        ("smtp", "invalid", 0, None),
    ]
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, plan)
    page_file, ledger_file = tmp_path / "report.html", tmp_path / "ledger.html"
    for args in ((data.batch_id, "-o", str(page_file)), ("ledger", "-o", str(ledger_file))):
        result = run_cli("report", *args, workspace=workspace.root)
        assert result.returncode == 0, result.stderr
    asyncio.run(_check_timeline_and_ledger(chromium, page_file, ledger_file))


async def _check_timeline_and_ledger(chromium: str, page_file: Path, ledger_file: Path) -> None:
    async with chromium_page(chromium) as page:
        await load(page, page_file.as_uri(), 1280, 1600, mobile=False)
        ticks = await page.evaluate(
            "[...document.querySelectorAll('#timeline svg text.tick')].map(t => {"
            " const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.right]; })"
        )
        labels = [t[0] for t in ticks]
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
        for (_, _, right), (_, left, _) in itertools.pairwise(ticks):
            assert right <= left, f"axis labels overlap: {ticks}"
        legend = await page.evaluate(
            "[...document.querySelectorAll('#timeline .legend li')].map(li => li.innerText)"
        )
        assert [item.split(":")[0] for item in legend] == [
            "accepted pings",
            "other pings",
            "suppressions",
        ]
        assert all(len(item.split(":", 1)[1].strip()) > 10 for item in legend), legend
        text = await page.evaluate("document.getElementById('timeline').innerText")
        assert "Each bar counts one minute" in text

        await load(page, ledger_file.as_uri(), 390, 844, mobile=True)
        assert "scrubber ledger report" in await page.evaluate("document.body.innerText")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the ledger page scrolls sideways on a phone"
        assert page.problems() == []
