"""Consistency between draws (a pooled report): every finding, and every comparison whose draws
differ, beside each draw's own numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..md_draws import consistency_section

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    return consistency_section(ctx)
