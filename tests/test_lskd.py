"""LS-KD (Logit Standardization KD, Sun et al. CVPR 2024): the authors' formula, the trainer's
log, and its base temperature searched by a study's grid and Optuna."""

import math

import pytest
import torch
import torch.nn.functional as F

from hpo_kd import methods
from hpo_kd.errors import UserError
from hpo_kd.kd import kd_loss, kd_per_sample
from hpo_kd.methods import Step, TrialContext
from hpo_kd.study import StudyError, load_study
from hpo_kd.train import run_trial

# --------------------------------------------------------------------------- the authors' formula


def _authors_normalize(logit):
    """The authors' `normalize`, written out: (z - mean) / (1e-7 + std), torch's std (n - 1)."""
    mean = logit.mean(dim=-1, keepdim=True)
    stdv = logit.std(dim=-1, keepdim=True)
    return (logit - mean) / (1e-7 + stdv)


def _authors_kd(z_s, z_t, T):
    """Their KD term with logit standardization: KL at T on the z-scored logits, times T^2, batch mean."""
    log_pred_student = F.log_softmax(_authors_normalize(z_s) / T, dim=1)
    pred_teacher = F.softmax(_authors_normalize(z_t) / T, dim=1)
    return F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1).mean() * T * T


@pytest.mark.parametrize("T", [2.0, 4.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_lskd_is_the_authors_formula_at_our_alpha(seed, T):
    g = torch.Generator().manual_seed(seed)
    z_s = (2 * torch.randn(16, 10, generator=g, dtype=torch.float64) + 1).requires_grad_()
    z_t = 5 * torch.randn(16, 10, generator=g, dtype=torch.float64) - 2
    y = torch.randint(0, 10, (16,), generator=g)
    m = methods.create("lskd", tau_t=T)
    tau_t, tau_s = m.temperatures()
    ours = kd_loss(z_s, z_t, y, tau_t, tau_s, alpha=0.9)
    theirs_kd = _authors_kd(z_s, z_t, T)
    ce = F.cross_entropy(z_s, y)
    assert ours["kd"].item() == pytest.approx(theirs_kd.item(), rel=1e-10)
    # The authors weight KD 9 : CE 1; ours alpha = 0.9 : 0.1 -- the same ratio, a tenth of the scale.
    theirs = 9 * theirs_kd + 1 * ce
    assert 10 * ours["loss"].item() == pytest.approx(theirs.item(), rel=1e-10)
    # The same gradient direction, through the standardization of the student's logits too.
    (g_ours,) = torch.autograd.grad(ours["loss"], z_s, retain_graph=True)
    (g_theirs,) = torch.autograd.grad(theirs, z_s)
    assert torch.allclose(10 * g_ours, g_theirs, rtol=1e-8, atol=1e-12)
    # ... which is not the gradient with the student's std held fixed: the std is not detached.
    sd = z_s.detach().std(dim=-1) + 1e-7
    fixed_kd = kd_per_sample(z_s, z_t, tau_t(z_t), T * sd, factor=T * T).mean()
    (g_fixed,) = torch.autograd.grad(0.9 * fixed_kd, z_s)
    (g_ours_kd,) = torch.autograd.grad(0.9 * ours["kd"], z_s)
    assert fixed_kd.item() == pytest.approx(ours["kd"].item(), rel=1e-10)
    assert not torch.allclose(g_fixed, g_ours_kd, rtol=1e-6)


def test_lskd_float32_matches_the_authors_formula():
    g = torch.Generator().manual_seed(2)
    z_s = 3 * torch.randn(64, 100, generator=g)
    z_t = 8 * torch.randn(64, 100, generator=g)
    y = torch.randint(0, 100, (64,), generator=g)
    m = methods.create("lskd")
    out = kd_loss(z_s, z_t, y, *m.temperatures(), alpha=0.9)
    assert out["kd"].item() == pytest.approx(_authors_kd(z_s, z_t, 2.0).item(), rel=1e-5)


def test_lskd_options():
    m = methods.create("lskd")
    assert (m.tau_t, m.tau_s) == (2.0, 2.0)  # the authors' base temperature, one for both
    assert m.current() == (2.0, 2.0)  # before any step: the base temperatures
    assert methods.create("lskd", tau_t=3.0).tau_s == 3.0
    assert methods.create("lskd", tau_t=3.0, tau_s=5.0).tau_s == 5.0
    for bad in ({"tau_t": 0.0}, {"tau_t": 2.0, "tau_s": -1.0}):
        with pytest.raises(UserError):
            methods.create("lskd", **bad)
    with pytest.raises(UserError, match="T0"):
        methods.create("lskd", T0=2.0)
    assert type(m).trains_in_group()
    assert methods.info("lskd")["label"] == "LS-KD" and "lskd" in methods.study_methods()


def test_lskd_logs_the_epochs_mean_per_sample_temperature():
    m = methods.create("lskd", tau_t=2.0, tau_s=3.0)
    m.setup(TrialContext(model=None, epochs=1, steps_per_epoch=2, alpha=0.9, device=torch.device("cpu")))
    g = torch.Generator().manual_seed(3)
    m.start_epoch(1)
    zs, zt = [], []
    for k, b in enumerate((5, 3)):  # two steps of unequal size: a mean over samples
        z_s, z_t = torch.randn(b, 7, generator=g), 4 * torch.randn(b, 7, generator=g)
        y = torch.randint(0, 7, (b,), generator=g)
        tau_t, tau_s = m.temperatures()
        losses = kd_loss(z_s, z_t, y, tau_t, tau_s, 0.9)
        m.observe(
            Step(
                epoch=1,
                step=k,
                x=None,
                target=y,
                student_logits=z_s,
                teacher_logits=z_t,
                losses=losses,
                tau_t=tau_t,
                tau_s=tau_s,
                lr=0.1,
            )
        )
        zs.append(z_s)
        zt.append(z_t)
    zs, zt = torch.cat(zs).double(), torch.cat(zt).double()
    want_t = (2.0 * (zt.std(dim=-1) + 1e-7)).mean().item()
    want_s = (3.0 * (zs.std(dim=-1) + 1e-7)).mean().item()
    assert m.current() == pytest.approx((want_t, want_s), rel=1e-6)
    m.start_epoch(2)  # a new epoch starts its own mean; until then the last reading stands
    assert m.current() == pytest.approx((want_t, want_s), rel=1e-6)
    assert m.state_dict() == {"tau_t": 2.0, "tau_s": 3.0}


def test_lskd_trial_runs_and_logs_per_sample_temperatures(cache):
    r = run_trial(dict(dataset="digits", epochs=2, teacher_epochs=1, method="lskd", cache_dir=cache, device="cpu"))
    assert r["status"] == "ok", r["error"]
    for row in r["history"]:
        assert {"tau_t", "tau_s", "train_kd", "train_ce", "train_loss"} <= set(row)
        # the mean of 2 * std of the logits: finite, positive, not the base temperature
        assert math.isfinite(row["tau_t"]) and row["tau_t"] > 0 and row["tau_t"] != 2.0
        assert math.isfinite(row["tau_s"]) and row["tau_s"] > 0 and row["tau_s"] != row["tau_t"]
    assert r["method_state"] == {"tau_t": 2.0, "tau_s": 2.0}
    assert (r["tau_t"], r["tau_s"]) == (r["history"][-1]["tau_t"], r["history"][-1]["tau_s"])


# --------------------------------------------------------------------------- studies

STUDY = """
name = "ls"
seeds = [0]
[train]
epochs = 2
[[settings]]
dataset = "digits"
[methods.grid]
temperatures = [1, 2, 4]
method = "lskd"
[methods.optuna]
trials = 3
method = "lskd"
[methods.lskd]
[methods.nokd]
"""


def test_a_grid_over_lskd_base_temperatures(study_file):
    s = load_study(study_file(STUDY))
    trials = s.student_trials()
    grid = [t for t in trials if t.method == "grid"]
    assert [(t.config["method"], t.config["tau_t"], t.config["tau_s"]) for t in grid] == [
        ("lskd", 1.0, 1.0),
        ("lskd", 2.0, 2.0),
        ("lskd", 4.0, 4.0),
    ]
    (search,) = [t for t in trials if t.method == "optuna"]
    assert search.config["method"] == "lskd" and "method" not in search.search and search.budget == 3
    (alone,) = [t for t in trials if t.method == "lskd"]
    assert alone.config["method"] == "lskd" and "tau_t" not in alone.config  # the authors' T = 2
    # A sampled temperature reaches the method as its base (tau = tau_t = tau_s, as for `fixed`).
    from hpo_kd.train import TrialConfig, make_method
    from hpo_kd.worker import trial_config

    cfg = trial_config({"spec": {"config": search.config}, "tau": 3.5})
    m = make_method(TrialConfig(**cfg).resolved())
    assert type(m).name == "lskd" and (m.tau_t, m.tau_s) == (3.5, 3.5)


def test_the_searchers_default_to_fixed_and_refuse_an_unsearchable_method(study_file):
    s = load_study(study_file(STUDY.replace('method = "lskd"\n', "")))
    assert {t.config["method"] for t in s.student_trials() if t.method in ("grid", "optuna")} == {"fixed"}
    with pytest.raises(StudyError, match="methods.grid.method.*allowed: fixed, lskd"):
        load_study(study_file(STUDY.replace('method = "lskd"', 'method = "dts"', 1), "bad.toml"))
