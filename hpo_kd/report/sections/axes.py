"""Transfer along each axis: the transfer cells between settings that differ in one thing only."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from .. import stability
from ..md_transfer import axes_section

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    return axes_section(ctx.transfer, stability.per_axis(ctx.transfer), ctx.margin)
