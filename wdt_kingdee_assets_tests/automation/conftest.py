"""A local chat-robot webhook (real HTTP on 127.0.0.1) and helpers to tick sensors like the daemon."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest

from wdt_kingdee_assets.definitions import FLOW_DEFS, build_resources
from wdt_kingdee_assets_tests.fixtures.pipeline import Pipeline


@dataclass
class Posted:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: str

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)


@dataclass
class WebhookReceiver:
    """Records every POST; answers what ``answer`` says (status and JSON body)."""

    port: int = 0
    posted: list[Posted] = field(default_factory=list)
    status: int = 200
    answer: dict[str, Any] = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8")
            parts = urlsplit(self.path)
            receiver.posted.append(
                Posted(parts.path, parse_qs(parts.query), dict(self.headers), raw)
            )
            payload = json.dumps(receiver.answer).encode("utf-8")
            self.send_response(receiver.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join()


def tick(
    sensor: dg.SensorDefinition,
    pipeline: Pipeline,
    cursor: str | None,
    **resources: object,
) -> dg.SensorResult:
    """One evaluation, as the daemon does it after a restart: a new context with the saved cursor."""
    # Every flow's assets and jobs (whichever flow the sensor is for), the sensor on its own.
    definitions = dg.Definitions(
        assets=[asset for flow_defs in FLOW_DEFS.values() for asset in flow_defs.assets],
        asset_checks=[c for flow_defs in FLOW_DEFS.values() for c in flow_defs.asset_checks],
        jobs=[job for flow_defs in FLOW_DEFS.values() for job in flow_defs.jobs],
        sensors=[sensor],
        resources=build_resources(str(pipeline.data_dir)),
    )
    context = dg.build_sensor_context(
        instance=pipeline.instance,
        cursor=cursor,
        definitions=definitions,
        resources={**build_resources(str(pipeline.data_dir)), **resources},
    )
    return sensor.evaluate_tick(context)


def late_order(pipeline: Pipeline, day: str, stockout_id: int, number: str) -> dict[str, Any]:
    """A completed stock-out of ``day`` that reaches WDT after the day was synced: a copy of one
    of the day's orders under a new id and number."""
    template = pipeline.completed_orders(day)[0]
    order = copy.deepcopy(template)
    order.update(stockout_id=stockout_id, stockout_no=number)
    return order
