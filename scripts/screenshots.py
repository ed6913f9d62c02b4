"""The README's pictures, taken anew: the sandbox, three days synced as the ops engineer meets
them (one done, one waiting on materials, one Kingdee failed), the Dagster UI on that instance,
and headless Chromium photographing the pages a person would rather look at than read.

    python scripts/screenshots.py            # writes docs/screens/*.png

Installs Debian's ``chromium`` and ``fonts-noto-cjk`` (for the Chinese) with apt-get when they
are missing and it runs as root; otherwise it says what to install. Nothing here is a test: the
pictures are for people, the same states are asserted in ``wdt_kingdee_assets_tests/e2e``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

from wdt_kingdee_assets.cli import sandbox_session, write_workspace

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screens"
SIZE = "1920,1080"


def ensure_chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("chromium is missing: apt-get install chromium fonts-noto-cjk (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium", "fonts-noto-cjk"], check=True, env=env
    )
    return shutil.which("chromium") or sys.exit("apt-get installed no chromium")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sync_three_days(home: Path) -> dict[str, str]:
    """Three days as the ops engineer meets them: each synced once (the last one's BatchSave
    answered HTTP 500), then the missing materials created in Kingdee and the first day synced
    again — one day done, one waiting on materials, one needing attention."""
    from dagster import DagsterInstance

    from wdt_kingdee_assets.instance import install_instance_config
    from wdt_kingdee_assets.operations import QUIET, RUN_TAGS
    from wdt_kingdee_assets.sandbox.faults import FaultRule
    from wdt_kingdee_assets.sandbox.runtime import SandboxOptions, kingdee_material

    config = install_instance_config(home)
    with config.open("a", encoding="utf-8") as extra:
        extra.write("\nnux:\n  enabled: false\n")  # no community pop-up over the pictures
    options = SandboxOptions(seed=11, orders_per_day=30, days=3, missing_ratio=0.04)
    with sandbox_session(options, home) as (sandbox, environment):
        from wdt_kingdee_assets.definitions import defs

        days = [day.isoformat() for day in sandbox.sync_days()]
        with DagsterInstance.get() as instance:
            for job in ("sync_stockouts", "sync_stockins"):
                for day in days:
                    if job == "sync_stockouts" and day == days[-1]:
                        sandbox.kingdee.faults.add(FaultRule.parse("5xx@BatchSave,times=999"))
                    defs.resolve_job_def(job).execute_in_process(
                        partition_key=day, instance=instance, run_config=QUIET, tags=RUN_TAGS,
                        raise_on_error=False,
                    )  # fmt: skip
                    sandbox.kingdee.faults.clear()
            for material in sandbox.catalog:
                if not material.in_kingdee:
                    sandbox.kingdee.add_material(
                        kingdee_material(material, sandbox.options.org_number)
                    )
            defs.resolve_job_def("sync_stockouts").execute_in_process(
                partition_key=days[0], instance=instance, run_config=QUIET, tags=RUN_TAGS
            )
    return environment


def serve(environment: dict[str, str], folder: Path, port: int) -> subprocess.Popen:
    workspace = write_workspace(folder)
    command = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    return subprocess.Popen(
        [*command, "-w", str(workspace)],
        cwd=folder,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    sys.exit(f"{url} did not answer in {seconds:.0f} s")


class Browser:
    """Headless Chromium driven over its DevTools protocol (websockets ships with Dagster's
    webserver), because some views open only after a click: a check's Partitions tab is not in
    the URL."""

    def __init__(self, chromium: str, profile: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={SIZE}",
                f"--remote-debugging-port={self.port}", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_for(f"http://127.0.0.1:{self.port}/json/version", seconds=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.calls = 0
        width, height = (int(n) for n in SIZE.split(","))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params: object) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.calls:
                if "error" in message:
                    sys.exit(f"chromium refused {method}: {message['error']}")
                return message["result"]

    def act(self, verb: str, text: str) -> None:
        """``click`` or ``show`` (scroll to the top) the last innermost element whose own text is
        ``text``: a check's tabs come after the asset's, which share their names."""
        action = {"click": "click()", "show": "scrollIntoView({block: 'start'})"}[verb]
        found = self.call(
            "Runtime.evaluate",
            expression=(
                "(() => { const hit = [...document.querySelectorAll('button, a, td, div, span')]"
                f".filter(e => e.childElementCount === 0 && e.textContent.trim() === {json.dumps(text)});"
                f" if (hit.length) {{ hit[hit.length - 1].{action}; }} return hit.length; }})()"
            ),
            returnByValue=True,
        )
        if not found["result"].get("value"):
            sys.exit(f"nothing to {verb} named {text!r}: did the UI change?")

    def photograph(self, url: str, target: Path, steps: tuple[tuple[str, str], ...] = ()) -> None:
        """One page, once the UI has fetched what it shows, after the clicks and scrolls asked."""
        self.call("Page.navigate", url=url)
        time.sleep(SETTLE_SECONDS)
        for verb, text in steps:
            self.act(verb, text)
            time.sleep(SETTLE_SECONDS)
        shot = self.call("Page.captureScreenshot", format="png")
        target.write_bytes(base64.b64decode(shot["data"]))
        print(f"{target.relative_to(ROOT)}  ←  {url} {' → '.join(' '.join(s) for s in steps)}")

    def close(self) -> None:
        self.socket.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


SETTLE_SECONDS = 6
DAY_COMPLETE = "/assets/kingdee_write_results?view=checks&checkDetail=day_complete"
PAGES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "runs.png": ("/runs", ()),
    "open-bills.png": ("/assets/open_bills", (("show", "by_cause"),)),
    "day-complete-check.png": (DAY_COMPLETE, ()),
    "day-complete-partitions.png": (DAY_COMPLETE, (("click", "Partitions"),)),
}


def main() -> int:
    chromium = ensure_chromium()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wdt-kingdee-screens-") as scratch:
        folder = Path(scratch)
        environment = sync_three_days(folder / "home")
        port = free_port()
        ui = serve(environment, folder, port)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/server_info")
            time.sleep(10)  # the code location loads after the server answers
            browser = Browser(chromium, folder / "chromium")
            try:
                for name, (path, steps) in PAGES.items():
                    browser.photograph(base + path, OUT / name, steps)
            finally:
                browser.close()
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
