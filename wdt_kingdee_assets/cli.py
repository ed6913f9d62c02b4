"""`wdt-kingdee`: start the sandbox, or sync recent days end to end against it.

wdt-kingdee sandbox [--seed 7 --orders-per-day 40 --days 3 ...]   serve both simulators
wdt-kingdee sync    [--days 3 --orders-per-day 40 ...] [--ui]      the main job, on the sandbox
wdt-kingdee preview --day YYYY-MM-DD [--flow NAME] [--out FILE]   what a sync would write; writes nothing
wdt-kingdee status  [--days 7]                                    where each recent day stands
wdt-kingdee open-bills [--csv FILE] [--xlsx FILE]                 every open bill, grouped by cause
wdt-kingdee retry   --bill NO … | --day YYYY-MM-DD                re-push bills, or a whole day
wdt-kingdee init-home [DIR]                                       put the shipped dagster.yaml there
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from wdt_kingdee_assets.files import default_data_dir
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.flows import FLOWS
from wdt_kingdee_assets.instance import install_instance_config
from wdt_kingdee_assets.lifecycle import NOT_IN_EFFECT
from wdt_kingdee_assets.open_bills import DayStatus, read_day_open_bills, status_of
from wdt_kingdee_assets.operations import (
    CODE_LOCATION,
    QUIET,
    RUN_TAGS,
    exit_code,
    fail,
    plan_retry,
    print_open_bills,
    print_status,
    recent_days,
    run_retry,
)
from wdt_kingdee_assets.outcomes import Outcome
from wdt_kingdee_assets.sandbox.runtime import REAL_DATA_CENTER, Sandbox, SandboxOptions

DEFAULT_DAGSTER_HOME = ".dagster_home"
# Variables the sandbox owns while it runs: a caller's values of these could name a real server.
SANDBOX_OWNED_PREFIXES = ("WDT_", "KINGDEE_")


def _add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("sandbox data")
    data.add_argument("--seed", type=int, default=7, help="data generator seed (default 7)")
    data.add_argument(
        "--orders-per-day", type=int, default=40, help="stock-outs per day (default 40)"
    )
    data.add_argument(
        "--stockins-per-day",
        type=int,
        default=None,
        help="production stock-ins per day (default: a quarter of the stock-outs)",
    )
    data.add_argument("--days", type=int, default=3, help="complete days before today (default 3)")
    data.add_argument(
        "--missing-ratio",
        type=float,
        default=0.03,
        help="share of materials Kingdee lacks (default 0.03)",
    )
    data.add_argument(
        "--malformed", type=int, default=0, help="malformed stock-outs per day (default 0)"
    )
    data.add_argument("--datetime-format", choices=["string", "epoch_ms"], default="string")
    data.add_argument(
        "--real-data-center",
        action="store_true",
        help="every data-center profile setting on (lots per position, both WDT row shapes, "
        "units by name and in cartons, precision, bins, shelf life, Kingdee's own material "
        "numbers, required custom fields), with the mapping that fits it",
    )
    limits = parser.add_argument_group("limits, latency and faults")
    limits.add_argument("--wdt-port", type=int, default=0, help="0 = a free port")
    limits.add_argument("--kingdee-port", type=int, default=0, help="0 = a free port")
    limits.add_argument(
        "--wdt-calls-per-minute", type=float, default=0, help="WDT rate limit; 0 = none"
    )
    limits.add_argument(
        "--wdt-concurrency", type=int, default=0, help="WDT concurrent calls; 0 = no limit"
    )
    limits.add_argument(
        "--wdt-latency",
        type=float,
        default=0.0,
        help="seconds each WDT call takes at least (the simulator's own work counted in it)",
    )
    limits.add_argument(
        "--wdt-per-order-latency",
        type=float,
        default=0.0,
        help="seconds each order on a WDT page adds to its call",
    )
    limits.add_argument(
        "--kingdee-latency",
        type=float,
        default=0.0,
        help="seconds each Kingdee call takes at least (the simulator's own work counted in it)",
    )
    limits.add_argument(
        "--kingdee-per-bill-latency",
        type=float,
        default=0.0,
        help="further seconds per bill in a BatchSave call",
    )
    limits.add_argument(
        "--kingdee-concurrency",
        type=int,
        default=0,
        help="Kingdee calls served at once; others wait (0 = no limit)",
    )
    limits.add_argument(
        "--kingdee-numbering",
        choices=["keep", "auto"],
        default="keep",
        help="keep the FBillNo sent, or number every bill by a coding rule (编码规则) as many "
        "data centers do (default keep)",
    )
    limits.add_argument(
        "--kingdee-custom-field",
        action="append",
        default=[],
        metavar="F_NAME",
        help="a custom header field (F_…) the 其他出库单 form carries, e.g. for the mapping's "
        "source_ref_field (repeatable)",
    )
    limits.add_argument(
        "--wdt-fault",
        action="append",
        default=[],
        metavar="RULE",
        help="e.g. 'throttle,times=2' or 'insert_rows,rows=3,skip=1' (repeatable)",
    )
    limits.add_argument(
        "--kingdee-fault",
        action="append",
        default=[],
        metavar="RULE",
        help="e.g. '5xx_after_commit@BatchSave' or 'session_lost@ExecuteBillQuery' (repeatable)",
    )


def _options(args: argparse.Namespace) -> SandboxOptions:
    return SandboxOptions(
        **(REAL_DATA_CENTER if args.real_data_center else {}),
        seed=args.seed,
        orders_per_day=args.orders_per_day,
        stockins_per_day=args.stockins_per_day,
        days=args.days,
        missing_ratio=args.missing_ratio,
        malformed=args.malformed,
        datetime_format=args.datetime_format,
        wdt_port=args.wdt_port,
        kingdee_port=args.kingdee_port,
        wdt_calls_per_minute=args.wdt_calls_per_minute,
        wdt_concurrency=args.wdt_concurrency,
        wdt_latency=args.wdt_latency,
        wdt_per_order_latency=args.wdt_per_order_latency,
        kingdee_latency=args.kingdee_latency,
        kingdee_per_bill_latency=args.kingdee_per_bill_latency,
        kingdee_concurrency=args.kingdee_concurrency,
        kingdee_numbering=args.kingdee_numbering,
        kingdee_custom_fields=[
            *(REAL_DATA_CENTER["kingdee_custom_fields"] if args.real_data_center else []),
            *args.kingdee_custom_field,
        ],
        wdt_faults=args.wdt_fault,
        kingdee_faults=args.kingdee_fault,
        org_number=os.environ.get("KINGDEE_ORG_NUMBER") or "100",
    )


def _stop_on_signal() -> threading.Event:
    """An event set by SIGINT or SIGTERM; installed before anything is printed, so a caller
    that reads the exports and stops the sandbox at once still gets a clean exit."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run_sandbox(args: argparse.Namespace) -> int:
    stop = _stop_on_signal()
    sandbox = Sandbox.from_env(_options(args))
    orders = sandbox.seed()
    with sandbox:
        for name, value in sandbox.env().items():
            print(f"export {name}={shlex.quote(value)}", flush=True)
        print(
            f"# sandbox: {orders} stock-outs over {args.days} day(s) + today, seed {args.seed}\n"
            f"# WDT admin:     {sandbox.wdt_server.root_url}/__admin__/state\n"
            f"# Kingdee admin: {sandbox.kingdee_server.root_url}/__admin__/state\n"
            "# serving until interrupted (Ctrl-C)",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    return 0


@dataclass
class DaySummary:
    flow: str
    day: str
    status: DayStatus
    orders: int | None
    created: int
    already: int
    held: int
    failed: int
    audited: int
    not_in_effect: int  # in Kingdee but not audited: refused at submit or audit, not gated …
    checks_passed: int
    checks_failed: list[str]


def _summarize(flow: Flow, day: str, result: object, data_dir: Path) -> DaySummary:
    from dagster import ExecuteInProcessResult

    assert isinstance(result, ExecuteInProcessResult)
    metadata = {
        event.asset_key.path[-1]: {
            key: value.value for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
        if event.asset_key
    }
    raw = metadata.get(flow.raw_name, {})
    evaluations = result.get_asset_check_evaluations()
    # What the write left open; a run that failed elsewhere (WDT down …) needs attention whatever
    # an earlier write of the day left.
    written = read_day_open_bills(data_dir, flow, day) if flow.results_name in metadata else None
    status = DayStatus.NOT_SYNCED if written is None else status_of(written)
    if not result.success and status != DayStatus.NOT_SYNCED:
        status = DayStatus.ATTENTION
    written = metadata.get(flow.results_name, {})
    return DaySummary(
        flow=flow.documents,
        day=day,
        status=status,
        orders=raw.get("orders"),
        created=written.get(Outcome.CREATED, 0),
        already=written.get(Outcome.ALREADY_IN_KINGDEE, 0),
        held=written.get(Outcome.HELD, 0),
        failed=written.get(Outcome.FAILED, 0),
        audited=written.get("audited", 0),
        not_in_effect=sum(written.get(state, 0) for state in NOT_IN_EFFECT),
        checks_passed=sum(1 for e in evaluations if e.passed),
        checks_failed=sorted(e.check_name for e in evaluations if not e.passed),
    )


def _print_summary(summaries: list[DaySummary]) -> None:
    print(
        f"\n{'flow':<11}{'day':<12}{'status':<20}{'orders':>7}{'created':>9}{'already':>9}"
        f"{'held':>6}{'failed':>8}{'audited':>9}{'refused':>9}  checks"
    )
    for s in summaries:
        checks = f"{s.checks_passed} passed" + (
            f", failed: {', '.join(s.checks_failed)}" if s.checks_failed else ""
        )
        orders = "-" if s.orders is None else str(s.orders)
        print(
            f"{s.flow:<11}{s.day:<12}{s.status.value:<20}{orders:>7}"
            f"{s.created:>9}{s.already:>9}"
            f"{s.held:>6}{s.failed:>8}{s.audited:>9}{s.not_in_effect:>9}  {checks}"
        )


def sandbox_environment(base: Mapping[str, str], sandbox: Sandbox, home: Path) -> dict[str, str]:
    """The environment of everything that runs against the sandbox.

    Every WDT_* and KINGDEE_* variable of the caller's environment is dropped first — endpoints,
    credentials, the data dir, the mapping of a real data center — so that no process of a demo
    can reach a real server or a production data dir, whatever the shell or a ``.env`` holds.
    """
    kept = {
        name: value for name, value in base.items() if not name.startswith(SANDBOX_OWNED_PREFIXES)
    }
    return {
        **kept,
        **sandbox.env(),
        "DAGSTER_HOME": str(home),
        "WDT_KINGDEE_DATA_DIR": str(home / "wdt_kingdee_data"),
    }


@contextmanager
def sandbox_session(
    options: SandboxOptions, home: Path
) -> Iterator[tuple[Sandbox, dict[str, str]]]:
    """A seeded sandbox serving, and this process's environment pointed at it: the job reads
    its settings from the environment, as it would for real servers."""
    sandbox = Sandbox(options)
    sandbox.seed()
    with sandbox:
        environment = sandbox_environment(os.environ, sandbox, home)
        os.environ.clear()
        os.environ.update(environment)
        yield sandbox, environment


def write_workspace(folder: Path) -> Path:
    """A workspace naming the code location as workspace.yaml and deploy/ do, the one the
    CLI's runs are tagged with: the UI lists them under their jobs."""
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: wdt_kingdee_assets.definitions\n"
        f"      location_name: {CODE_LOCATION}\n",
        encoding="utf-8",
    )
    return workspace


def run_sync(args: argparse.Namespace) -> int:
    home = Path(args.dagster_home).resolve()
    if args.ui:
        _port_free_or_exit(args.port)
    # The shipped instance config (pools, run limits, telemetry off); a file already there is the
    # user's and is kept.
    install_instance_config(home)

    with sandbox_session(_options(args), home) as (sandbox, environment):
        from dagster import DagsterInstance

        from wdt_kingdee_assets.definitions import defs
        from wdt_kingdee_assets.flows import FLOWS

        days = [day.isoformat() for day in sandbox.sync_days()]
        data_dir = Path(environment["WDT_KINGDEE_DATA_DIR"])
        print(
            f"Syncing {', '.join(days)} from the WDT sandbox into the Kingdee sandbox, every flow "
            f"({', '.join(flow.title for flow in FLOWS)}) …",
            flush=True,
        )
        summaries = []
        with DagsterInstance.get() as instance:
            for flow in FLOWS:
                job = defs.resolve_job_def(flow.job_name)
                for day in days:
                    result = job.execute_in_process(
                        partition_key=day,
                        instance=instance,
                        raise_on_error=False,
                        run_config=QUIET,
                        tags=RUN_TAGS,
                    )
                    summaries.append(_summarize(flow, day, result, data_dir))
        _print_summary(summaries)
        print()
        print_open_bills(data_dir, FLOWS, limit=10)
        held = ", ".join(
            f"{len(sandbox.kingdee.bills(flow.form.form_id))} {flow.form.chinese} "
            f"({flow.form.form_id})"
            for flow in FLOWS
        )
        print(f"\nKingdee sandbox now holds {held}.")
        print(f"Run history and check results are stored in {home}.")
        if args.ui:
            return _serve_ui(environment, args.port)
        print(
            "Open the UI on the same data (from this checkout):\n"
            f"    DAGSTER_HOME={shlex.quote(str(home))} dagster dev -w workspace.yaml\n"
            "(or run `wdt-kingdee sync --ui` to keep this sandbox running behind the UI).\n"
            f"Exit code {exit_code(s.status for s in summaries)}: 0 every day done, 3 bills wait on "
            "someone (the sandbox always lacks a few materials), 1 something needs attention."
        )
    return exit_code(s.status for s in summaries)


def _port_free_or_exit(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(f"port {port} on 127.0.0.1 is in use: pass another with --port")


def _serve_ui(environment: Mapping[str, str], port: int) -> int:
    print(
        f"Starting `dagster dev` on http://127.0.0.1:{port} with this sandbox (Ctrl-C to stop) …",
        flush=True,
    )
    # `dagster dev` loads a `.env` of its working directory over its environment, and passes it
    # to the code server, daemon and webserver: started from a folder holding only the
    # workspace file, none of them can pick up a real data center's endpoints or credentials.
    with tempfile.TemporaryDirectory(prefix="wdt-kingdee-ui-") as folder:
        workspace = write_workspace(Path(folder))
        command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace)]
        command += ["-h", "127.0.0.1", "-p", str(port)]
        with subprocess.Popen(command, env=dict(environment), cwd=folder) as ui:
            try:
                return ui.wait()
            except KeyboardInterrupt:
                ui.terminate()
                return ui.wait()


def run_init_home(args: argparse.Namespace) -> int:
    home = Path(args.dagster_home or os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME)
    existed = (home / "dagster.yaml").exists()
    target = install_instance_config(home.resolve(), replace=args.force)
    kept = existed and not args.force
    print(f"{target} {'kept (use --force to replace it)' if kept else 'written'}")
    print(f"export DAGSTER_HOME={shlex.quote(str(home.resolve()))}")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    """The day's bills against Kingdee, from the same environment a run reads (SPEC §5
    variables, the flow's mapping file, the data dir for merged bills' batches). Exit 0 when it
    could answer, whatever it found; 2 when it could not (a variable missing, an API down)."""
    import dagster as dg

    from wdt_kingdee_assets.kingdee.errors import KingdeeError
    from wdt_kingdee_assets.mapping import MappingConfigError
    from wdt_kingdee_assets.preview import preview_day, preview_lines
    from wdt_kingdee_assets.resources import build_resources
    from wdt_kingdee_assets.wdt.errors import WdtError

    flows = {flow.name: flow for flow in FLOWS}
    flow = flows[args.flow]
    try:
        with dg.build_resources(build_resources()) as resources:
            preview = preview_day(
                flow,
                flow.load_mapping(),
                resources.wdt.client(),
                resources.kingdee.client(),
                resources.kingdee.org_number,
                args.day,
                io_manager=resources.io_manager,
            )
    except dg.DagsterInvalidConfigError as exc:
        missing = sorted(set(re.findall(r'environment variable "(\w+)"', str(exc))))
        why = f"not set: {', '.join(missing)}" if missing else str(exc).splitlines()[0]
        print(f"preview {flow.name} {args.day}: cannot answer: {why}", file=sys.stderr)
        return 2
    except (KingdeeError, WdtError, MappingConfigError) as exc:
        print(f"preview {flow.name} {args.day}: cannot answer: {exc}", file=sys.stderr)
        return 2
    for line in preview_lines(preview):
        print(line)
    if args.out:
        Path(args.out).write_text(
            json.dumps(preview.payloads, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        print(
            f"{sum(len(p['data']['Model']) for p in preview.payloads)} bill(s) in "
            f"{len(preview.payloads)} BatchSave payload(s) written to {args.out}"
        )
    return 0


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or default_data_dir())


def _flows(args: argparse.Namespace) -> list[Flow]:
    return [flow for flow in FLOWS if args.flow in (None, flow.name)]


def run_status(args: argparse.Namespace) -> int:
    return print_status(_data_dir(args), _flows(args), recent_days(args.days))


def run_open_bills(args: argparse.Namespace) -> int:
    return print_open_bills(_data_dir(args), _flows(args), csv=args.csv, xlsx=args.xlsx)


def run_retry_command(args: argparse.Namespace) -> int:
    """Re-push the named bills (or a whole day) through the retry job, against the servers the
    environment names (SPEC §5), recorded in the instance of DAGSTER_HOME."""
    if not os.environ.get("DAGSTER_HOME"):
        return fail("retry: DAGSTER_HOME is not set: the run must be recorded in your instance")
    try:
        plans = plan_retry(_data_dir(args), _flows(args), args.bill, args.day)
    except ValueError as exc:
        return fail(f"retry: {exc}")
    return run_retry(plans, _data_dir(args))


def _add_stored_days_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flow", choices=[flow.name for flow in FLOWS], help="one flow (default: every flow)"
    )
    parser.add_argument(
        "--data-dir",
        help="the stored days (default: $WDT_KINGDEE_DATA_DIR, else $DAGSTER_HOME/wdt_kingdee_data)",
    )


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wdt-kingdee", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sandbox = commands.add_parser("sandbox", help="serve the WDT and Kingdee simulators")
    _add_sandbox_options(sandbox)
    sandbox.set_defaults(run=run_sandbox)
    sync = commands.add_parser(
        "sync", help="sync the last --days days from the sandbox, end to end"
    )
    _add_sandbox_options(sync)
    sync.add_argument(
        "--dagster-home",
        default=DEFAULT_DAGSTER_HOME,
        help="instance folder (default .dagster_home)",
    )
    sync.add_argument(
        "--ui", action="store_true", help="after syncing, serve the Dagster UI on this sandbox"
    )
    sync.add_argument("--port", type=int, default=3000, help="port of the UI (default 3000)")
    sync.set_defaults(run=run_sync)
    preview = commands.add_parser(
        "preview",
        help="show what a sync of a day would write, against what Kingdee holds; writes nothing",
    )
    preview.add_argument("--day", type=_day, required=True, help="the Beijing day, YYYY-MM-DD")
    preview.add_argument(
        "--flow",
        default="production_stockout",
        choices=[flow.name for flow in FLOWS],
        help="which flow (default production_stockout)",
    )
    preview.add_argument(
        "--out", help="write the exact BatchSave payloads of new bills here (JSON)"
    )
    preview.set_defaults(run=run_preview)
    status = commands.add_parser(
        "status",
        help="where each recent day stands (exit 0 done, 3 waiting on someone, 1 needs attention)",
    )
    status.add_argument(
        "--days", type=int, default=7, help="complete days before today (default 7)"
    )
    _add_stored_days_options(status)
    status.set_defaults(run=run_status)
    open_bills = commands.add_parser(
        "open-bills", help="every held, failed or not-in-effect bill, grouped by cause"
    )
    open_bills.add_argument("--csv", help="also write the bills here (UTF-8 with BOM, for Excel)")
    open_bills.add_argument("--xlsx", help="also write causes and bills here as a workbook")
    _add_stored_days_options(open_bills)
    open_bills.set_defaults(run=run_open_bills)
    retry = commands.add_parser(
        "retry",
        help="re-push bills (--bill, found among the open bills) or a whole day (--day); "
        "nothing is written twice",
    )
    retry.add_argument(
        "--bill",
        action="append",
        default=[],
        metavar="NO",
        help="FBillNo or WDT document number (repeatable)",
    )
    retry.add_argument("--day", type=_day, help="the Beijing day, YYYY-MM-DD")
    _add_stored_days_options(retry)
    retry.set_defaults(run=run_retry_command)
    init_home = commands.add_parser(
        "init-home", help="write the shipped dagster.yaml (pools, run limits) into DAGSTER_HOME"
    )
    init_home.add_argument(
        "dagster_home", nargs="?", help="default: $DAGSTER_HOME, else .dagster_home"
    )
    init_home.add_argument("--force", action="store_true", help="replace an existing dagster.yaml")
    init_home.set_defaults(run=run_init_home)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
