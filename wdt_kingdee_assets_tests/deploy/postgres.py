"""A throwaway PostgreSQL server on 127.0.0.1 for tests: initdb + pg_ctl in a temporary folder."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "postgres"  # the server refuses to run as root


def server_binaries() -> Path | None:
    """The folder holding initdb/pg_ctl: on PATH, or Debian's versioned folder."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    database: str

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.database,
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        }


def _as_service_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[PostgresServer]:
    # Directly under /tmp: pytest's own temporary folders are private to root, and the server
    # runs as another user that must reach its data directory.
    workdir = Path(tempfile.mkdtemp(prefix="wdt-kingdee-pg-"))
    data, sockets = workdir / "pgdata", workdir / "pgsock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, SERVICE_USER)
        shutil.chown(sockets, SERVICE_USER)
    port = free_port()

    def run(*command: str) -> None:
        result = subprocess.run(
            _as_service_user(list(command)), capture_output=True, text=True, timeout=120
        )
        if result.returncode:
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({result.returncode}): {result.stderr[-2000:]}"
            )

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8")
    run(
        str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "postgres.log"), "-w", "-t", "60",
        "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1",
        "start",
    )  # fmt: skip
    try:
        run(
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "dagster",
            "dagster_test",
        )
        yield PostgresServer("127.0.0.1", port, "dagster", "dagster_test")
    finally:
        subprocess.run(
            _as_service_user(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(workdir, ignore_errors=True)
