"""Files people and tools read: where the stored days live, and writing one so that a reader
never sees half of it. No Dagster in here: the CLI and the readers use it without loading it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

DATA_DIR_ENV = "WDT_KINGDEE_DATA_DIR"
DAY_FIELD = "day"  # every stored row names its partition, for tools that read the files


def default_data_dir() -> str:
    """``$WDT_KINGDEE_DATA_DIR``, else ``$DAGSTER_HOME/wdt_kingdee_data``, else ``./wdt_kingdee_data``."""
    if os.environ.get(DATA_DIR_ENV):
        return os.environ[DATA_DIR_ENV]
    if os.environ.get("DAGSTER_HOME"):
        return str(Path(os.environ["DAGSTER_HOME"]) / "wdt_kingdee_data")
    return str(Path.cwd() / "wdt_kingdee_data")


def write_atomically(
    path: Path, write: Callable[[IO[Any]], None], file_mode: str, *, binary: bool = False
) -> None:
    """``path`` as ``write`` fills it, or as it was: a temporary file of the same folder, given
    the documented mode and renamed into place (folders made with the matching mode)."""
    mode = int(file_mode, 8)
    _make_folders(path.parent, _folder_mode(mode))
    with tempfile.NamedTemporaryFile(
        "wb" if binary else "w",
        encoding=None if binary else "utf-8",
        dir=path.parent,
        prefix=f".{path.name}.",
        delete=False,
    ) as handle:
        try:
            write(handle)
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
        temporary = handle.name
    # A temporary file is the owner's alone (0600): the stored file gets the documented mode.
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def _folder_mode(file_mode: int) -> int:
    """A folder's mode for files of ``file_mode``: searchable by whoever may read the files."""
    return 0o700 | file_mode | ((file_mode & 0o044) >> 2)


def _make_folders(folder: Path, mode: int) -> None:
    """``folder`` and its missing parents with ``mode`` (mkdir's is masked by the umask)."""
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    for parent in reversed(missing):
        parent.mkdir(exist_ok=True)
        os.chmod(parent, mode)
