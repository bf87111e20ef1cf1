"""The report by sections, from one typed context; a new method's plot knowledge on its class."""

import pytest
from test_report import LABEL, SEEDS, A, _store

from hpo_kd import methods as methods_mod
from hpo_kd import report as rep
from hpo_kd.methods import TemperatureMethod
from hpo_kd.report import markdown, plot_base, plots, sections
from hpo_kd.store import Store


def test_the_report_is_its_sections_in_order(tmp_path):
    folder = tmp_path / "runs" / "synthetic"
    _store(folder)
    ctx = rep.context([str(folder)])  # no folder to draw into: no plots
    assert isinstance(ctx, rep.ReportContext) and ctx.study == "synthetic" and ctx.plots == []
    parts = [s.render(ctx) for s in sections.SECTIONS]
    md = markdown.render(ctx)
    assert md == "\n".join(line for p in parts for line in p)
    heads = [p[0] for p in parts if p]
    assert heads[0] == "# Study `synthetic`" and heads[1].startswith("## Findings") and heads[-1] == "## Plots"
    at = [md.index(h) for h in heads]
    assert at == sorted(at)


@pytest.fixture
def tiny(monkeypatch):
    """A method registered for the test only, with its own plot knowledge and no report change."""

    class Tiny(TemperatureMethod):
        name = "tinykd"
        kind = "learned"
        label = "Tiny"
        trajectory_colors = {"tau_t": "C4", "tau_s": "C5"}

        @classmethod
        def moved_temperatures(cls, options):
            return [("tau_t", "τ_t"), ("tau_s", "τ_s")]

        @classmethod
        def clamps(cls, options):
            return (1.0, options.get("top", 10.0))

    monkeypatch.setitem(methods_mod.METHODS._items, "tinykd", Tiny)
    return Tiny


def test_a_new_method_brings_its_own_temperatures_and_clamps(tmp_path, monkeypatch, tiny):
    s = Store(str(tmp_path / "runs" / "synthetic"))
    for i, (seed, start) in enumerate((sd, st) for sd in SEEDS for st in (2.0, 8.0)):
        end_t, end_s = (3.0, 10.0) if start == 8.0 else (3.0 + 0.01 * seed, 2.0)
        s.add(
            {
                "trial_id": f"t{i}",
                "unit_id": f"t{i}",
                "study": "synthetic",
                "setting": A,
                "setting_label": LABEL[A],
                "method": f"tinykd:{start:g}",
                "seed": seed,
                "tau_t_config": start,
                "tau_s_config": start,
                "options": {"top": 10.0},
                "status": "ok",
                "val_acc": 0.8,
                "test_acc": 0.8,
                "tau_t": end_t,
                "tau_s": end_s,
                "epochs_run": 2,
                "seconds": 1.0,
            },
            [{"epoch": 1, "tau_t": start, "tau_s": start}, {"epoch": 2, "tau_t": end_t, "tau_s": end_s}],
        )
    st = rep.analyse(s.trials(), s.curves()).starts.set_index("quantity")
    assert list(st.index) == ["tau_t", "tau_s"]  # both temperatures it moves
    assert st.loc["tau_s", "at_clamp"] == len(SEEDS)  # its runs that end at its own clamp (10)
    drawn = {}
    monkeypatch.setattr(plot_base, "finish", lambda plt, fig, axes, path: drawn.update(axes=axes))
    assert plots.trajectories(s.trials(), s.curves(), str(tmp_path / "t.png"))
    labels = [ln.get_label() for ax in drawn["axes"] for ln in ax.get_lines()]
    assert "Tiny τ_t: mean (thin: each seed)" in labels and "Tiny τ_s: mean (thin: each seed)" in labels
    assert "Tiny's clamp range" in labels and "ends at the clamp" in labels
