"""The Dagster instance configuration this project ships (``dagster.yaml``) and how it is installed.

One file, inside the package so that an installed (non-editable) copy has it too; `wdt-kingdee
init-home` and `wdt-kingdee sync` copy it into ``DAGSTER_HOME``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")


def install_instance_config(home: Path, *, replace: bool = False) -> Path:
    """Copy the shipped ``dagster.yaml`` into ``home``; an existing file is kept unless ``replace``.

    Returns the path of the instance config that ``home`` now has.
    """
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if replace or not target.exists():
        shutil.copyfile(INSTANCE_CONFIG, target)
    return target
