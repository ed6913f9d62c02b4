"""Both simulators started together, seeded with consistent data, and the environment to reach them.

The WDT side gets generated stock-outs; the Kingdee side gets the same material catalog (minus the
materials that are deliberately missing) and the warehouses, so a sync of the sandbox exercises
ready and held bills alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from wdt_kingdee_assets.sandbox.credentials import (
    KingdeeCredentials,
    WdtCredentials,
    kingdee_from_env,
    wdt_from_env,
)
from wdt_kingdee_assets.sandbox.datagen import (
    WAREHOUSES,
    CatalogMaterial,
    build_catalog,
    generate_day,
    generate_stockin_day,
)
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets.sandbox.httpserver import SimServer
from wdt_kingdee_assets.sandbox.kingdee_server import (
    KingdeeMaterial,
    KingdeeSimulator,
    KingdeeUnit,
)
from wdt_kingdee_assets.sandbox.wdt_server import (
    BEIJING,
    STOCKIN,
    WdtSimulator,
    parse_stored_time,
)

# Today is seeded up to this long ago, as a warehouse's last scans reach WDT a little late. The
# sandbox's own figure (it reads nothing of the pipeline's); the pipeline reads the open day up
# to "now − 2 min", so every seeded order of today is inside its window.
SEEDED_LAG = timedelta(minutes=2)


@dataclass
class SandboxOptions:
    seed: int = 7
    orders_per_day: int = 40
    stockins_per_day: int | None = None  # production stock-ins; None = a quarter of the orders
    days: int = 3  # complete days before today; today's orders so far are added too
    missing_ratio: float = 0.03
    malformed: int = 0
    datetime_format: Literal["string", "epoch_ms"] = "string"
    wdt_port: int = 0
    kingdee_port: int = 0
    wdt_calls_per_minute: float = 0
    wdt_concurrency: int = 0
    wdt_latency: float = 0.0
    wdt_per_order_latency: float = 0.0
    kingdee_latency: float = 0.0
    kingdee_per_bill_latency: float = 0.0
    kingdee_concurrency: int = 0  # server threads: calls beyond it wait their turn; 0 = no limit
    kingdee_unique_bill_no: bool = True  # False: Kingdee accepts a duplicate FBillNo (coding rules)
    kingdee_numbering: Literal["keep", "auto"] = "keep"  # auto: the coding rule renumbers bills
    kingdee_custom_fields: list[str] = field(default_factory=list)  # the form's F_… fields
    kingdee_track_stock: bool = False  # on-hand stock moved by Audit; negative stock refused
    # -- the data-center profile: each off by default, where the simpler world is the common
    # one; ``real_data_center()`` turns every one on (README "Fitting a real data center").
    wdt_lots_in_positions: bool = False  # batches only per position; lines from 2 batches/bins
    wdt_shape: Literal["2024", "2020", "mixed"] = "2024"  # 2020: no ids, warehouse name only …
    wdt_unit_names: bool = False  # units by name (个, 千克 …), as a WDT tenant names them
    kingdee_unit_precision: bool = False  # BD_UNIT precision: kg and m 2 decimals, Pcs and 箱 0
    kingdee_cartons_in_pieces: bool = False  # goods WDT counts in 箱 are Pcs in Kingdee (24/箱)
    kingdee_bins: bool = False  # CK001 and CK003 manage bins (仓位): every entry needs one
    kingdee_shelf_life: bool = False  # lot-managed materials also manage shelf life (dates)
    kingdee_material_codes: bool = False  # materials numbered 01.0001 …, WDT code in a field
    kingdee_branch_org: bool = False  # CK004 belongs to a second stock org (BRANCH_ORG)
    kingdee_custom_entry_fields: list[str] = field(default_factory=list)  # the entries' F_…
    kingdee_required_fields: list[str] = field(default_factory=list)  # custom fields 必录
    # The stock-out mapping file that fits this sandbox (WDT_KINGDEE_MAPPING in env()); None =
    # the caller's own, or the built-in defaults.
    mapping_file: str | None = None
    wdt_faults: list[str] = field(default_factory=list)
    kingdee_faults: list[str] = field(default_factory=list)
    org_number: str = "100"
    today: date | None = None  # for tests; default: today in Beijing


# BD_UNIT as the sandbox's Kingdee has it: the catalog's unit numbers, Chinese names.
KINGDEE_UNIT_NAMES = {"Pcs": "Pcs", "kg": "千克", "m": "米", "箱": "箱"}
UNIT_PRECISION = {"Pcs": 0, "kg": 2, "m": 2, "箱": 0}  # with kingdee_unit_precision
CARTON_PIECES = 24  # kingdee_cartons_in_pieces: pieces in one WDT 箱
MATERIAL_CODE_FIELD = "F_PAEZ_WdtCode"  # kingdee_material_codes: BD_MATERIAL's WDT code
BIN_WAREHOUSES = ("CK001", "CK003")  # kingdee_bins
# kingdee_branch_org: a branch factory's stock org, with a warehouse of its own; the materials
# are assigned to it too (BD_MATERIAL has a row per use-org).
BRANCH_ORG = "200"
BRANCH_DEPARTMENT = "BM000200"  # the branch's own 领料部门: the main org's is not assigned to it
BRANCH_WAREHOUSE = "CK004"
# Every bin code WDT's positions use (datagen: A-01-01 … A-29-08), each a bin in Kingdee.
BINS = tuple(f"A-{row:02d}-{shelf:02d}" for row in range(1, 30) for shelf in range(1, 9))


# Every data-center profile setting on, both row shapes in one WDT (``mixed``), two custom fields
# Kingdee requires: the sandbox as a demanding customer's data center. The mapping that fits it
# is ``real_data_center.yaml`` beside this module (REAL_DATA_CENTER_MAPPING).
REAL_DATA_CENTER_MAPPING = Path(__file__).with_name("real_data_center.yaml")
REAL_DATA_CENTER: dict[str, Any] = {
    "mapping_file": str(REAL_DATA_CENTER_MAPPING),
    "wdt_lots_in_positions": True,
    "wdt_shape": "mixed",
    "wdt_unit_names": True,
    "kingdee_unit_precision": True,
    "kingdee_cartons_in_pieces": True,
    "kingdee_bins": True,
    "kingdee_shelf_life": True,
    "kingdee_material_codes": True,
    "kingdee_branch_org": True,
    "kingdee_custom_fields": ["F_PAEZ_Workshop"],
    "kingdee_custom_entry_fields": ["F_PAEZ_WdtLine"],
    "kingdee_required_fields": ["F_PAEZ_Workshop", "F_PAEZ_WdtLine"],
}


def real_data_center(**overrides: Any) -> SandboxOptions:
    """The sandbox options of the real-data-center profile (``REAL_DATA_CENTER``)."""
    return SandboxOptions(**{**REAL_DATA_CENTER, **overrides})


def kingdee_number(material: CatalogMaterial, index: int, options: SandboxOptions) -> str:
    """The material's FNumber in the sandbox's Kingdee."""
    return f"01.{index + 1:04d}" if options.kingdee_material_codes else material.number


def kingdee_material(
    material: CatalogMaterial, org: str, options: SandboxOptions | None = None, index: int = 0
) -> KingdeeMaterial:
    opts = options or SandboxOptions()
    cartons = opts.kingdee_cartons_in_pieces and material.base_unit == "箱"
    return KingdeeMaterial(
        number=kingdee_number(material, index, opts),
        name=material.name,
        base_unit="Pcs" if cartons else material.base_unit,
        use_org=org,
        batch_managed=material.batch_managed,
        shelf_life=opts.kingdee_shelf_life and material.batch_managed,
        fields={MATERIAL_CODE_FIELD: material.number} if opts.kingdee_material_codes else {},
    )


def kingdee_units(options: SandboxOptions) -> list[KingdeeUnit]:
    return [
        KingdeeUnit(number, name, UNIT_PRECISION[number] if options.kingdee_unit_precision else 4)
        for number, name in KINGDEE_UNIT_NAMES.items()
    ]


class Sandbox:
    """Two live simulators; use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        options: SandboxOptions | None = None,
        *,
        wdt_credentials: WdtCredentials | None = None,
        kingdee_credentials: KingdeeCredentials | None = None,
    ) -> None:
        self.options = options or SandboxOptions()
        opts = self.options
        self.wdt_credentials = wdt_credentials or WdtCredentials()
        self.kingdee_credentials = kingdee_credentials or KingdeeCredentials()
        self.catalog = build_catalog(opts.seed, missing_ratio=opts.missing_ratio)
        self.wdt = WdtSimulator(
            self.wdt_credentials,
            calls_per_minute=opts.wdt_calls_per_minute,
            max_concurrency=opts.wdt_concurrency,
            latency=opts.wdt_latency,
            per_order_latency=opts.wdt_per_order_latency,
            datetime_format=opts.datetime_format,
            shape=opts.wdt_shape,
            unit_names=opts.wdt_unit_names,
        )
        orgs = (opts.org_number, BRANCH_ORG) if opts.kingdee_branch_org else (opts.org_number,)
        self.kingdee = KingdeeSimulator(
            self.kingdee_credentials,
            materials=[
                kingdee_material(material, org, opts, index)
                for org in orgs
                for index, material in enumerate(self.catalog)
                if material.in_kingdee
            ],
            units=kingdee_units(opts),
            material_fields=[MATERIAL_CODE_FIELD] if opts.kingdee_material_codes else (),
            bin_warehouses=dict.fromkeys(BIN_WAREHOUSES, BINS) if opts.kingdee_bins else None,
            custom_entry_fields=opts.kingdee_custom_entry_fields,
            required_custom_fields=opts.kingdee_required_fields,
            warehouses=[number for number, _ in WAREHOUSES],
            warehouse_orgs={BRANCH_WAREHOUSE: BRANCH_ORG} if opts.kingdee_branch_org else None,
            orgs=orgs,
            departments=(
                {"BM000032": [opts.org_number], BRANCH_DEPARTMENT: [BRANCH_ORG]}
                if opts.kingdee_branch_org
                else ("BM000032",)
            ),
            latency=opts.kingdee_latency,
            per_bill_latency=opts.kingdee_per_bill_latency,
            max_concurrency=opts.kingdee_concurrency,
            unique_bill_no=opts.kingdee_unique_bill_no,
            numbering=opts.kingdee_numbering,
            custom_header_fields=opts.kingdee_custom_fields,
            track_stock=opts.kingdee_track_stock,
        )
        for rule in opts.wdt_faults:
            self.wdt.faults.add(FaultRule.parse(rule))
        for rule in opts.kingdee_faults:
            self.kingdee.faults.add(FaultRule.parse(rule))
        self.wdt_server = SimServer(self.wdt, port=opts.wdt_port)
        self.kingdee_server = SimServer(self.kingdee, port=opts.kingdee_port)

    @classmethod
    def from_env(cls, options: SandboxOptions | None = None) -> Sandbox:
        """A sandbox that accepts exactly the credentials set in the SPEC §5 variables, if any."""
        return cls(options, wdt_credentials=wdt_from_env(), kingdee_credentials=kingdee_from_env())

    @property
    def today(self) -> date:
        return self.options.today or datetime.now(BEIJING).date()

    def sync_days(self) -> list[date]:
        """The complete days that were seeded, oldest first."""
        return [self.today - timedelta(days=n) for n in range(self.options.days, 0, -1)]

    @property
    def stockins_per_day(self) -> int:
        opts = self.options
        return opts.orders_per_day // 4 if opts.stockins_per_day is None else opts.stockins_per_day

    def seed(self) -> int:
        """Generate the days (and today's documents up to now): stock-outs and stock-ins;
        returns the number of stock-outs."""
        opts = self.options
        added = 0
        for day in [*self.sync_days(), self.today]:
            orders = generate_day(
                day,
                seed=opts.seed,
                orders=opts.orders_per_day,
                catalog=self.catalog,
                malformed=opts.malformed,
                lots_in_positions=opts.wdt_lots_in_positions,
            )
            if day == self.today:
                # Today's orders up to a few minutes ago: those "not yet scanned" stay out, and
                # the pipeline's own read of the open day (now − 2 min) finds what is there.
                cutoff = datetime.now(BEIJING).replace(tzinfo=None) - SEEDED_LAG
                orders = [
                    o for o in orders if (t := parse_stored_time(o["consign_time"])) and t < cutoff
                ]
            self.wdt.add_orders(orders)
            added += len(orders)
            stockins = generate_stockin_day(
                day, seed=opts.seed, stockins=self.stockins_per_day, catalog=self.catalog
            )
            if day == self.today:
                stockins = [
                    o for o in stockins if (t := parse_stored_time(o["check_time"])) and t < cutoff
                ]
            self.wdt.add_orders(stockins, STOCKIN.name)
        return added

    def start(self) -> Sandbox:
        self.wdt_server.start()
        self.kingdee_server.start()
        return self

    def stop(self) -> None:
        self.wdt_server.stop()
        self.kingdee_server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def wdt_base_url(self) -> str:
        return f"{self.wdt_server.root_url}/openapi"

    @property
    def kingdee_base_url(self) -> str:
        return f"{self.kingdee_server.root_url}/k3cloud/"

    def env(self) -> dict[str, str]:
        """Every SPEC §5 variable, pointing at this sandbox, and its first day as the partitions'
        start (so that no UI offers years of empty days to "materialize missing")."""
        wdt, kingdee = self.wdt_credentials, self.kingdee_credentials
        return {
            "WDT_KINGDEE_START_DATE": self.sync_days()[0].isoformat()
            if self.options.days
            else self.today.isoformat(),
            "WDT_BASE_URL": self.wdt_base_url,
            "WDT_SID": wdt.sid,
            "WDT_APPKEY": wdt.appkey,
            "WDT_APPSECRET": wdt.appsecret,
            "KINGDEE_BASE_URL": self.kingdee_base_url,
            "KINGDEE_ACCT_ID": kingdee.acct_id,
            "KINGDEE_USERNAME": kingdee.username,
            "KINGDEE_APP_ID": kingdee.app_id,
            "KINGDEE_APP_SECRET": kingdee.app_secret,
            "KINGDEE_LCID": str(kingdee.lcid),
            "KINGDEE_ORG_NUMBER": self.options.org_number,
            **(
                {"WDT_KINGDEE_MAPPING": self.options.mapping_file}
                if self.options.mapping_file
                else {}
            ),
        }
