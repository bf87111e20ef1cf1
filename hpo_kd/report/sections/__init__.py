"""The report, section by section: each module computes and renders its part of report.md from
the report's context (`report.context.ReportContext`) with `render(ctx) -> list of lines`;
`SECTIONS` is their order. A section with nothing to say returns no lines. A new section is a
module here with a `render`, named in `SECTIONS`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import (
    axes,
    consistency,
    findings,
    header,
    per_setting,
    plots,
    published,
    ranks,
    selection,
    spread,
    starts,
    teachers,
    test_set,
    transfer,
)

if TYPE_CHECKING:
    from ..context import ReportContext

SECTIONS = (
    header,
    findings,
    consistency,
    teachers,
    spread,
    test_set,
    per_setting,
    published,
    ranks,
    selection,
    axes,
    transfer,
    starts,
    plots,
)


def render(ctx: ReportContext) -> str:
    """report.md: every section's lines, in order."""
    return "\n".join(line for section in SECTIONS for line in section.render(ctx))


__all__ = ["SECTIONS", "render"]
