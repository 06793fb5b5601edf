"""Per-batch reports added up into a run's totals."""

from __future__ import annotations

from typing import TypeVar

import attrs
from attrs import AttrsInstance

R = TypeVar("R", bound=AttrsInstance)


def add_up(a: R, b: R) -> R:
    """Two reports of one attrs class of counts, added field by field."""
    return type(a)(*(x + y for x, y in zip(attrs.astuple(a), attrs.astuple(b), strict=True)))
