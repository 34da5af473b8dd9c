"""Open a page in headless Chromium (Debian's `chromium`) over the DevTools protocol and report what rendered.

No Playwright: its browsers come from a CDN. This drives the system browser
through `--remote-debugging-port` with aiohttp's WebSocket client: navigate,
wait for the load event, evaluate a probe script, take a screenshot, and keep
every console error, uncaught exception and browser log error on the way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

CHROMIUM = "/usr/bin/chromium"
STARTUP_TIMEOUT_S = 60  # the browser's first start on a loaded 2-core machine takes several seconds
PAGE_TIMEOUT_S = 60
VIEWPORT = (1280, 2400)


@dataclass(frozen=True)
class PageReport:
    probe: object  # what the probe expression returned (JSON-like)
    console_errors: list[str]
    screenshot_png: bytes


def require_chromium() -> str:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    return CHROMIUM


def _error_of(message: dict) -> str | None:
    """The text of a console error, uncaught exception or browser log error event; None for anything else."""
    method, params = message.get("method"), message.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return "console: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return "exception: " + str(details.get("exception", {}).get("description") or details.get("text"))
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip()
    return None


class _Session:
    """One page target's WebSocket: send commands, await their replies, collect errors from events meanwhile."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse):
        self.socket = socket
        self.errors: list[str] = []
        self._next_id = 0

    async def send(self, method: str, params: dict | None = None, until_event: str | None = None) -> dict:
        self._next_id += 1
        command_id = self._next_id
        await self.socket.send_json({"id": command_id, "method": method, "params": params or {}})
        result, event_seen = None, until_event is None
        while result is None or not event_seen:
            message = json.loads((await self.socket.receive()).data)
            error = _error_of(message)
            if error:
                self.errors.append(error)
            if message.get("id") == command_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                result = message["result"]
            event_seen = event_seen or message.get("method") == until_event
        return result


def _devtools_port(process: subprocess.Popen, profile: Path) -> int:
    """The port Chromium chose, from the DevToolsActivePort file it writes into its profile once listening."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if active.exists() and active.read_text().strip():
            return int(active.read_text().splitlines()[0])
        if process.poll() is not None:
            break
        time.sleep(0.1)
    log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"chromium did not listen for DevTools within {STARTUP_TIMEOUT_S} s; its log:\n{log}")


async def _inspect(port: int, url: str, probe: str) -> PageReport:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket:
            session = _Session(socket)
            for domain in ("Runtime", "Log", "Page"):
                await session.send(f"{domain}.enable")
            await session.send("Emulation.setDeviceMetricsOverride", {
                "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
            await session.send("Page.navigate", {"url": url}, until_event="Page.loadEventFired")
            value = await session.send("Runtime.evaluate", {"expression": probe, "returnByValue": True})
            shot = await session.send("Page.captureScreenshot", {"format": "png"})
            return PageReport(value["result"].get("value"), session.errors, base64.b64decode(shot["data"]))


def inspect_page(url: str, probe: str) -> PageReport:
    """Load `url` in a fresh headless Chromium, evaluate `probe` (a JS expression) and screenshot the viewport."""
    profile = Path(tempfile.mkdtemp(prefix="clipline-chromium-"))
    with open(profile / "chromium.log", "wb") as log:
        process = subprocess.Popen(
            [require_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        port = _devtools_port(process, profile)
        return asyncio.run(asyncio.wait_for(_inspect(port, url, probe), PAGE_TIMEOUT_S))
    finally:
        process.kill()
        process.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
