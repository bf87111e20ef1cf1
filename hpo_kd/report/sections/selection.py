"""Selection within a setting: how much the grid's val-selected τ varies over seeds, and the floor."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..md_transfer import selection_section

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    return selection_section(ctx.stability)
