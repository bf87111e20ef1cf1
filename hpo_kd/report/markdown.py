"""The report as Markdown: report.md section by section (`sections`), and timings.md. Every
sentence is built from a computed table or verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fmt import table
from .sections import render
from .sections.findings import finding

if TYPE_CHECKING:
    from .context import ReportContext

__all__ = ["render", "timings", "finding"]


def timings(ctx: ReportContext) -> str:
    summ = ctx.summary
    return "\n".join(
        [
            f"# Study `{ctx.study}`: timings",
            "",
            "Trial-seconds per seed (the training time of every trial a method ran), from the store. They depend on "
            "the machine and its load, so they live here, apart from the reproducible report. A student that "
            "trained in a group with others of its setting and seed (the store's `grouped` column; "
            "`[resources] students_per_trial`) counts its share of the group's training time and its own "
            "evaluation.",
            "",
            table(
                summ,
                [
                    ("setting_label", "setting", ""),
                    ("method", "method", ""),
                    ("epochs_per_seed", "epochs", ".0f"),
                    ("seconds_per_seed", "trial-seconds", ".1f"),
                ],
            ),
            "",
        ]
    )
