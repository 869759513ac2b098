"""A real headless Chromium driven over the DevTools protocol (aiohttp's
websocket client): open a page, record console messages, uncaught
exceptions, failed and blocked requests, load at a viewport, screenshot."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import end_process


@dataclass
class Page:
    """One CDP session on a page target, with the events it has seen."""

    ws: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0
    loader_id: str = ""  # the last navigation's, to tell its lifecycle events apart

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 30)
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)

    async def wait_for(self, method: str, **params: Any) -> None:
        """Until an event ``method`` has come whose params hold ``params``."""

        def matches(event: dict[str, Any]) -> bool:
            given = event.get("params", {})
            return event["method"] == method and all(given.get(k) == v for k, v in params.items())

        if any(matches(e) for e in self.events):
            return
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 30)
            if "method" in message:
                self.events.append(message)
                if matches(message):
                    return

    async def network_idle(self) -> None:
        """Until Chromium says the loaded page's network is idle (no request for
        500 ms after load): what the page fetches or runs on load has happened,
        and its console messages and errors are among the events."""
        await self.wait_for("Page.lifecycleEvent", name="networkIdle", loaderId=self.loader_id)
        await self.evaluate("1")  # a round trip: events sent before it are read

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def problems(self) -> list[dict[str, Any]]:
        """Console errors/warnings, exceptions, failed requests, any network request."""
        return [e for e in self.events if _is_problem(e["method"], e.get("params", {}))]


def _is_problem(method: str, params: dict[str, Any]) -> bool:
    if method in ("Runtime.exceptionThrown", "Network.loadingFailed"):
        return True
    if method == "Log.entryAdded":
        return bool(params["entry"]["level"] in ("error", "warning"))
    if method == "Runtime.consoleAPICalled":
        return bool(params["type"] in ("error", "warning"))
    if method == "Network.requestWillBeSent":
        # A self-contained page fetches nothing but itself.
        return not params["request"]["url"].startswith(("file://", "data:"))
    return False


@asynccontextmanager
async def chromium_page(binary: str) -> AsyncIterator[Page]:
    profile = Path(tempfile.mkdtemp(prefix="scrubber-chromium-"))
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = await _devtools_port(profile, proc)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(url, max_msg_size=0) as ws:
                page = Page(ws)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await page.call(f"{domain}.enable")
                await page.call("Page.setLifecycleEventsEnabled", enabled=True)
                yield page
    finally:
        end_process(proc)
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    """Chromium writes the port it picked to DevToolsActivePort in the profile."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited with {proc.returncode}")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        await asyncio.sleep(0.1)
    raise AssertionError("chromium did not open its DevTools port")


async def load(page: Page, url: str, width: int, height: int, mobile: bool) -> None:
    await page.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=mobile,
    )
    page.events = [e for e in page.events if e["method"] != "Page.loadEventFired"]
    page.loader_id = (await page.call("Page.navigate", url=url)).get("loaderId", "")
    await page.wait_for("Page.loadEventFired")


async def screenshot(page: Page, path: Path) -> bytes:
    data = base64.b64decode((await page.call("Page.captureScreenshot", format="png"))["data"])
    path.write_bytes(data)
    return data
