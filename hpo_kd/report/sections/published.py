"""Beside the published figures: what papers report for the same pair, beside this study's figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..fmt import table

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    """The published figures beside this study's, each measured the papers' way too."""
    md: List[str] = []
    pub = ctx.published
    if pub is not None and not pub.empty:
        md += [
            "## Beside the published figures",
            "",
            "What papers report for the same pair (one number each, from their recipe and machines), beside "
            "this study's test accuracy, mean and sd over seeds. For orientation only: no verdict is computed "
            "from a published figure, and a study that trains for fewer epochs than the papers' 240 is not "
            "comparable to them.",
            "",
            "*Measured* is this study's figure: the test accuracy after the final epoch, of the configuration "
            "a method selected on val (KD: the grid's τ = 4 runs; the teacher as trained). "
            "*Best test over epochs* is the measure the papers report (CRD, CTKD, DKD, LS-KD, "
            "mdistiller's tables): for the same runs, the highest test accuracy over each run's epochs, mean "
            "over runs. It selects the epoch on the **test** set, so it is optimistic and not an estimate of "
            "accuracy on unseen data; it is shown only so that each published figure stands beside its like. "
            "A run that evaluated only its last epoch (a teacher) counts that epoch.",
            "",
            table(
                pub,
                [
                    ("setting_label", "setting", ""),
                    ("what", "what", ""),
                    ("n", "runs", "d"),
                    ("measured", "measured %", ".2f"),
                    ("sd", "sd", ".2f"),
                    ("best_test", "best test over epochs % (test-set selection, the papers' measure)", ".2f"),
                    ("published", "published %", ".2f"),
                    ("source", "source", ""),
                ],
            ),
            "",
        ]
        md += [f"- `{k}`: {v}" for k, v in sorted(ctx.sources.items()) if k in set(pub["source"])] + [""]
    return md
