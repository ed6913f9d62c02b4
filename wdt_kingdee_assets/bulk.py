"""Helpers for building a day's worth of rows at once."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    A day can hold millions of parsed JSON values, rows and bill entries. Allocating them
    triggers full collections that rescan the whole heap each time: measured, more than half
    the mapping's CPU time at 100k orders. These objects hold no reference cycles, so reference
    counting frees them on its own.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
