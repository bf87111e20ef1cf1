"""Teachers: their accuracy per setting, and a warning for a teacher below its no-KD student."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..fmt import table

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    """The teachers' accuracy, with a warning for a teacher below its no-KD student."""
    md: List[str] = []
    t = ctx.teachers
    if not t.empty:
        md += [
            "## Teachers",
            "",
            table(
                t,
                [
                    ("setting_label", "setting", ""),
                    ("teacher", "teacher", ""),
                    ("teachers", "teachers", "d"),
                    ("val", "val % (mean)", ".2f"),
                    ("test", "test % (mean)", ".2f"),
                    ("test_min", "min", ".2f"),
                    ("test_max", "max", ".2f"),
                ],
            ),
            "",
        ]
        for w in ctx.weak_teachers:
            md.append(f"> **Warning:** {w}")
        if ctx.weak_teachers:
            md.append("")
    return md
