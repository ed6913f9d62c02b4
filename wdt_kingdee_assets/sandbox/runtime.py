"""Both simulators started together, seeded with consistent data, and the environment to reach them.

The WDT side gets generated stock-outs; the Kingdee side gets the same material catalog (minus the
materials that are deliberately missing) and the warehouses, so a sync of the sandbox exercises
ready and held bills alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

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
from wdt_kingdee_assets.sandbox.kingdee_server import KingdeeMaterial, KingdeeSimulator
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
    kingdee_latency: float = 0.0
    kingdee_per_bill_latency: float = 0.0
    kingdee_concurrency: int = 0  # server threads: calls beyond it wait their turn; 0 = no limit
    kingdee_unique_bill_no: bool = True  # False: Kingdee accepts a duplicate FBillNo (coding rules)
    kingdee_numbering: Literal["keep", "auto"] = "keep"  # auto: the coding rule renumbers bills
    kingdee_custom_fields: list[str] = field(default_factory=list)  # the form's F_… fields
    kingdee_track_stock: bool = False  # on-hand stock moved by Audit; negative stock refused
    wdt_faults: list[str] = field(default_factory=list)
    kingdee_faults: list[str] = field(default_factory=list)
    org_number: str = "100"
    today: date | None = None  # for tests; default: today in Beijing


def kingdee_material(material: CatalogMaterial, org: str) -> KingdeeMaterial:
    return KingdeeMaterial(
        number=material.number,
        name=material.name,
        base_unit=material.base_unit,
        use_org=org,
        batch_managed=material.batch_managed,
    )


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
            datetime_format=opts.datetime_format,
        )
        self.kingdee = KingdeeSimulator(
            self.kingdee_credentials,
            materials=[kingdee_material(m, opts.org_number) for m in self.catalog if m.in_kingdee],
            warehouses=[number for number, _ in WAREHOUSES],
            orgs=(opts.org_number,),
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
        }
