"""What the report's plots share: a method's colour and marker, pyplot without a display, panels
one per setting, and saving with one legend below the panels. Same tables, same bytes: no dates
or software versions in the PNG metadata."""

from __future__ import annotations

import math

import numpy as np

from .. import methods as methods_mod


def color(m: str):
    """The method's colour (from its class); variants ("mkd:from16") and methods without one get
    their own, stable, from tab20."""
    c = methods_mod.info(m)["color"]
    if c is not None:
        return c
    import zlib

    import matplotlib

    return matplotlib.colormaps["tab20"](zlib.crc32(m.encode()) % 20)


def marker(m: str) -> str:
    return methods_mod.info(m)["marker"]


VERDICT_COLORS = {"better": "C2", "worse": "C3", "equivalent": "C0", "inconclusive": "0.5"}


def pyplot():
    """matplotlib.pyplot on the Agg backend, with the report's style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "hpo_kd"})
    return plt


COLUMNS = 3  # panels per row: more settings wrap onto further rows


def panels(plt, n: int, height: float = 3.8, width: float = 4.6, **kw):
    """n panels, one per setting, at most COLUMNS to a row; (figure, the n axes in order)."""
    cols = min(n, COLUMNS)
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kw)
    axes = list(grid.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def legend_below(fig, axes) -> None:
    """One legend for the figure, under the panels, so that no marker or error bar is hidden."""
    handles, names = {}, []
    for ax in np.ravel(axes):
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in handles:
                handles[n] = h
                names.append(n)
    if names:
        ncol = max(1, min(len(names), int(fig.get_size_inches()[0] / 2.4)))
        fig.legend([handles[n] for n in names], names, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.03 + 0.045 * math.ceil(len(names) / ncol), 1, 1))


def finish(plt, fig, axes, path):
    """Save a figure of panels with its legend below them (the plot modules call it through this
    module, so that a test can replace it and look at the axes)."""
    legend_below(fig, axes)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
