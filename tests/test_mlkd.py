"""MLKD's instance term (Multi-level Logit Distillation, Jin et al., CVPR 2023): KD summed over a
set of temperatures, each with its T^2; the authors' formula, options and a trial."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpo_kd import methods
from hpo_kd.errors import UserError
from hpo_kd.kd import kd_loss
from hpo_kd.study import StudyError, load_study
from hpo_kd.train import run_trial


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _authors(z_s, z_t, temperatures):
    """Their instance term in numpy, unmasked: for each T, T^2 * batch mean of
    KL(softmax(z_t / T) || softmax(z_s / T)) summed over classes; the terms summed over T."""
    total = 0.0
    for T in temperatures:
        p = _softmax(z_t / T)
        q = _softmax(z_s / T)
        total += T * T * (p * (np.log(p) - np.log(q))).sum(axis=1).mean()
    return total


def _authors_torch(z_s, z_t, temperatures):
    """The same in torch as their code writes it (kl_div, sum(1).mean(), * T**2), for gradients."""
    total = 0
    for T in temperatures:
        log_q = F.log_softmax(z_s / T, dim=1)
        p = F.softmax(z_t / T, dim=1)
        total = total + F.kl_div(log_q, p, reduction="none").sum(1).mean() * T**2
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_mlkd_is_the_authors_instance_term_at_our_alpha(seed):
    g = torch.Generator().manual_seed(seed)
    z_s = (2 * torch.randn(16, 10, generator=g, dtype=torch.float64) + 1).requires_grad_()
    z_t = 5 * torch.randn(16, 10, generator=g, dtype=torch.float64) - 2
    y = torch.randint(0, 10, (16,), generator=g)
    m = methods.create("mlkd")
    assert m.taus == (2.0, 3.0, 4.0, 5.0, 6.0)  # the authors' {4, 3, 5, 2, 6}
    ours = m.loss(z_s, z_t, y, *m.temperatures(), alpha=0.9)
    assert list(ours) == ["loss", "kd", "ce"]
    theirs = _authors(z_s.detach().numpy(), z_t.numpy(), (4, 3, 5, 2, 6))
    assert ours["kd"].item() == pytest.approx(theirs, rel=1e-10)
    # their CIFAR-100 weights: 0.9 per KD term, 0.1 for CE -- ours at alpha = 0.9, on one view
    ce = F.cross_entropy(z_s, y).item()
    assert ours["loss"].item() == pytest.approx(0.9 * theirs + 0.1 * ce, rel=1e-10)
    (g_ours,) = torch.autograd.grad(ours["kd"], z_s)
    (g_theirs,) = torch.autograd.grad(_authors_torch(z_s, z_t, (4.0, 3.0, 5.0, 2.0, 6.0)), z_s)
    assert torch.allclose(g_ours, g_theirs, rtol=1e-8, atol=1e-12)
    # reduce = "mean" divides by the number of temperatures
    mean = methods.create("mlkd", temperatures=[1.5, 8], reduce="mean").loss(z_s, z_t, y, 1.0, 1.0, 0.9)["kd"]
    assert mean.item() == pytest.approx(_authors(z_s.detach().numpy(), z_t.numpy(), (1.5, 8)) / 2, rel=1e-10)


def test_mlkd_with_one_temperature_is_hintons_kd():
    g = torch.Generator().manual_seed(3)
    z_s, z_t = torch.randn(32, 7, generator=g), 4 * torch.randn(32, 7, generator=g)
    y = torch.randint(0, 7, (32,), generator=g)
    one = methods.create("mlkd", temperatures=[4]).loss(z_s, z_t, y, 1.0, 1.0, 0.9)
    kd = kd_loss(z_s, z_t, y, 4.0, 4.0, 0.9)
    for k in ("loss", "kd", "ce"):
        assert one[k].item() == pytest.approx(kd[k].item(), rel=1e-6)


def test_mlkd_float32_matches_the_authors_formula():
    g = torch.Generator().manual_seed(2)
    z_s, z_t = 3 * torch.randn(64, 100, generator=g), 8 * torch.randn(64, 100, generator=g)
    y = torch.randint(0, 100, (64,), generator=g)
    out = methods.create("mlkd").loss(z_s, z_t, y, 1.0, 1.0, 0.9)
    theirs = _authors(z_s.double().numpy(), z_t.double().numpy(), (2, 3, 4, 5, 6))
    assert out["kd"].item() == pytest.approx(theirs, rel=1e-5)


def test_mlkd_options():
    assert methods.create("mlkd", temperatures="2, 4").taus == (2.0, 4.0)  # --opt temperatures=2,4
    assert methods.create("mlkd", temperatures=[3]).taus == (3.0,)
    for bad in ([], [2, 0], [2, -1], "a,b", [float("inf")], 4):
        with pytest.raises(UserError, match="mlkd option temperatures = .*; allowed: a non-empty list of positive"):
            methods.create("mlkd", temperatures=bad)
    with pytest.raises(UserError, match="mlkd option reduce = 'max'; allowed: sum, mean"):
        methods.create("mlkd", reduce="max")
    for option in ("tau_t", "tau_s"):  # no single temperature to give
        with pytest.raises(UserError, match=f"unknown option.*{option}.*allowed: temperatures, reduce"):
            methods.create("mlkd", **{option: 4.0})
    m = methods.create("mlkd", temperatures=[2, 5], reduce="mean")
    assert all(math.isnan(v) for v in m.current())
    m2 = methods.create("mlkd")
    m2.load_state_dict(m.state_dict())
    assert (m2.taus, m2.reduce) == ((2.0, 5.0), "mean")
    cls = methods.METHODS.get("mlkd")
    assert not cls.searchable and cls.trains_in_group() and "mlkd" in methods.study_methods()
    assert methods.info("mlkd")["label"] == "MLKD"


def test_mlkd_study_options_are_checked(study_file):
    base = """
name = "ml"
seeds = [0]
[[settings]]
dataset = "digits"
[methods.mlkd]
temperatures = [2, 4]
"""
    assert load_study(study_file(base)).methods["mlkd"] == {"temperatures": [2, 4]}
    with pytest.raises(StudyError, match="methods.mlkd.*temperatures"):
        load_study(study_file(base.replace("[2, 4]", "[]"), "bad.toml"))


def test_mlkd_trial_runs(cache):
    r = run_trial(dict(dataset="digits", epochs=2, teacher_epochs=1, method="mlkd", cache_dir=cache, device="cpu"))
    assert r["status"] == "ok", r["error"]
    for row in r["history"]:
        assert math.isnan(row["tau_t"]) and math.isnan(row["tau_s"])
        assert math.isfinite(row["train_kd"]) and row["train_kd"] > 0
    assert r["method_state"] == {"temperatures": [2.0, 3.0, 4.0, 5.0, 6.0], "reduce": "sum"}


def test_a_report_draws_no_trajectory_for_mlkd(tmp_path):
    """MLKD logs no temperature (NaN): the trajectories plot leaves it out, and has nothing to draw
    when it is the only method that runs on its own."""
    from hpo_kd.report import plots
    from hpo_kd.store import Store

    s = Store(str(tmp_path / "runs" / "synthetic"))
    nan = float("nan")
    for seed in range(2):
        s.add(
            {
                "trial_id": f"m{seed}",
                "unit_id": f"m{seed}",
                "study": "synthetic",
                "setting": "digits|none|1|cnn_wide>mlp",
                "setting_label": "digits(100%,none)",
                "method": "mlkd",
                "seed": seed,
                "tau_t": nan,
                "tau_s": nan,
                "status": "ok",
                "val_acc": 0.8,
                "test_acc": 0.8,
                "epochs_run": 2,
                "seconds": 1.0,
                "finished_at": float(seed),
            },
            [{"epoch": e + 1, "tau_t": nan, "tau_s": nan, "val_acc": 0.5} for e in range(2)],
        )
    assert not plots.trajectories(s.trials(), s.curves(), str(tmp_path / "t.png"))
    assert not (tmp_path / "t.png").exists()
