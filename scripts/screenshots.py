"""The README's pictures, taken anew: the sandbox, three days synced as the ops engineer meets
them (one done, one waiting on materials, one Kingdee failed), the Dagster UI on that instance,
and headless Chromium photographing the pages a person would rather look at than read.

    python scripts/screenshots.py            # writes docs/screens/*.png

Installs Debian's ``chromium`` and ``fonts-noto-cjk`` (for the Chinese) with apt-get when they
are missing and it runs as root; otherwise it says what to install. Nothing here is a test: the
pictures are for people, the same states are asserted in ``wdt_kingdee_assets_tests/e2e``.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screens"
SIZE = "1600,1000"


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
    """A done day, a day waiting on materials, a day whose bills Kingdee failed (HTTP 500)."""
    from dagster import DagsterInstance

    from wdt_kingdee_assets.cli import sandbox_environment
    from wdt_kingdee_assets.instance import install_instance_config
    from wdt_kingdee_assets.operations import QUIET, RUN_TAGS
    from wdt_kingdee_assets.sandbox.faults import FaultRule
    from wdt_kingdee_assets.sandbox.runtime import Sandbox, SandboxOptions

    install_instance_config(home)
    sandbox = Sandbox(SandboxOptions(seed=11, orders_per_day=30, days=3, missing_ratio=0.04))
    sandbox.seed()
    with sandbox:
        environment = sandbox_environment(os.environ, sandbox, home)
        os.environ.clear()
        os.environ.update(environment)
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
    return environment


def serve(environment: dict[str, str], folder: Path, port: int) -> subprocess.Popen:
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: wdt_kingdee_assets.definitions\n"
        "      location_name: wdt_kingdee_assets\n",
        encoding="utf-8",
    )
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


def photograph(chromium: str, url: str, target: Path, profile: Path) -> None:
    """One page, once the UI has fetched what it shows (virtual time runs while it waits)."""
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
            f"--window-size={SIZE}", "--virtual-time-budget=20000", f"--screenshot={target}", url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    print(f"{target.relative_to(ROOT)}  ←  {url}")


PAGES = {
    "runs.png": "/runs",
    "open-bills.png": "/assets/open_bills",
    "day-complete-check.png": "/assets/kingdee_write_results?view=checks",
    "write-results-partitions.png": "/assets/kingdee_write_results?view=partitions",
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
            for name, path in PAGES.items():
                photograph(chromium, base + path, OUT / name, folder / "chromium")
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
