"""Seed spread: the standard deviation over seeds per setting, flagged above the study's limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..fmt import table

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    """The seed spread per setting, flagged above the study's limit."""
    md: List[str] = []
    sp = ctx.spread
    if not sp.empty:
        md += [
            "## Seed spread",
            "",
            f"Standard deviation over seeds of the test accuracy (points); a setting above {ctx.max_spread:g} "
            "is flagged: its comparisons need more seeds or longer training.",
            "",
            table(
                sp,
                [
                    ("setting_label", "setting", ""),
                    ("nokd_sd", "no-KD sd", ".2f"),
                    ("grid_sd", "grid's selection sd", ".2f"),
                    ("flag", "flag", ""),
                ],
            ),
            "",
        ]
    return md
