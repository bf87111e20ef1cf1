"""Test set: the test set's own sampling error, which intervals over seeds leave out."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from .. import testset

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    return testset.section(ctx)
