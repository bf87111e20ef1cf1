"""TTM and WTTM (Transformed Teacher Matching, Zheng & Yang, ICLR 2024): the authors' formula,
options, a trial, and tau searched by a study's grid and Optuna (gamma = 1 / tau_t)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpo_kd import methods
from hpo_kd.cli import main
from hpo_kd.errors import UserError
from hpo_kd.kd import kd_loss
from hpo_kd.study import StudyError, load_study
from hpo_kd.train import run_trial, run_trials

# --------------------------------------------------------------------------- the authors' formula


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _authors(z_s, z_t, gamma, weighted):
    """Their TTM / WTTM term in numpy: p_t^gamma renormalised; KL(p~_t || softmax(z_s)) per sample;
    TTM the batch mean, WTTM the batch mean of norm * KL with norm = sum_k p_t^gamma."""
    p_t = _softmax(z_t) ** gamma
    norm = p_t.sum(axis=1)
    p_t = p_t / norm[:, None]
    log_q = np.log(_softmax(z_s))
    kl = (p_t * (np.log(p_t) - log_q)).sum(axis=1)
    return (norm * kl).mean() if weighted else kl.mean()


def _authors_torch(z_s, z_t, gamma, weighted):
    """The same in torch (for gradients), as their code writes it: pow, sum, kl_div."""
    p_s = F.log_softmax(z_s, dim=1)
    p_t = torch.pow(torch.softmax(z_t, dim=1), gamma)
    norm = torch.sum(p_t, dim=1)
    p_t = p_t / norm.unsqueeze(1)
    kl = torch.sum(F.kl_div(p_s, p_t, reduction="none"), dim=1)
    return torch.mean(norm * kl) if weighted else torch.mean(kl)


def _ce(z_s, y):
    z = z_s - z_s.max(axis=1, keepdims=True)
    return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean()


@pytest.mark.parametrize("name", ["ttm", "wttm"])
@pytest.mark.parametrize("tau", [10.0, 2.5, 0.8])
@pytest.mark.parametrize("seed", [0, 1])
def test_ttm_is_the_authors_formula_at_our_alpha(name, tau, seed):
    g = torch.Generator().manual_seed(seed)
    z_s = (2 * torch.randn(16, 10, generator=g, dtype=torch.float64) + 1).requires_grad_()
    z_t = 5 * torch.randn(16, 10, generator=g, dtype=torch.float64) - 2
    y = torch.randint(0, 10, (16,), generator=g)
    m = methods.create(name, tau_t=tau)
    assert m.gamma == 1 / tau
    ours = m.loss(z_s, z_t, y, *m.temperatures(), alpha=0.9)
    assert list(ours) == ["loss", "kd", "ce"]  # the trainer's terms, in its order
    weighted = name == "wttm"
    theirs = _authors(z_s.detach().numpy(), z_t.numpy(), 1 / tau, weighted)
    assert ours["kd"].item() == pytest.approx(theirs, rel=1e-10)
    ce = _ce(z_s.detach().numpy(), y.numpy())
    assert ours["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert ours["loss"].item() == pytest.approx(0.9 * theirs + 0.1 * ce, rel=1e-10)
    # The same gradient as their code's term (the student's logits only: the teacher has none).
    (g_ours,) = torch.autograd.grad(ours["kd"], z_s)
    (g_theirs,) = torch.autograd.grad(_authors_torch(z_s, z_t, 1 / tau, weighted), z_s)
    assert torch.allclose(g_ours, g_theirs, rtol=1e-8, atol=1e-12)


def test_ttm_is_kd_with_the_student_at_temperature_one():
    # p_t^gamma renormalised is softmax(z_t / tau): TTM is our KD at tau_t = tau, tau_s = 1,
    # whose factor tau_t * tau_s = tau TTM does not have.
    g = torch.Generator().manual_seed(4)
    z_s, z_t = torch.randn(8, 5, generator=g, dtype=torch.float64), 3 * torch.randn(8, 5, generator=g).double()
    y = torch.randint(0, 5, (8,), generator=g)
    ttm = methods.create("ttm", tau_t=4.0).loss(z_s, z_t, y, 4.0, 1.0, 0.9)["kd"]
    kd = kd_loss(z_s, z_t, y, 4.0, 1.0, 0.9)["kd"]
    assert ttm.item() == pytest.approx(kd.item() / 4.0, rel=1e-12)


def test_wttm_weight_is_the_teachers_power_sum():
    # gamma < 1: sum_k p_k^gamma lies in [1, C^(1 - gamma)]; a one-hot-like teacher is near 1, a
    # uniform one at C^(1 - gamma). WTTM / TTM is then their (KL-weighted) mean.
    z_s = torch.zeros(2, 4, dtype=torch.float64)
    z_t = torch.tensor([[60.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    w = methods.create("wttm", tau_t=2.0).loss(z_s, z_t, y, 2.0, 1.0, 0.9)["kd"]
    t = methods.create("ttm", tau_t=2.0).loss(z_s, z_t, y, 2.0, 1.0, 0.9)["kd"]
    # sample 2: uniform teacher and student, KL = 0; sample 1: weight ~1
    assert w.item() == pytest.approx(t.item(), rel=1e-9)
    z_t = torch.tensor([[1.0, 0.5, 0.0, 0.0]], dtype=torch.float64)
    u = (torch.softmax(z_t, dim=1) ** 0.5).sum().item()
    assert 1 < u < 4**0.5
    z_s = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    w = methods.create("wttm", tau_t=2.0).loss(z_s, z_t, y[:1], 2.0, 1.0, 0.9)["kd"]
    t = methods.create("ttm", tau_t=2.0).loss(z_s, z_t, y[:1], 2.0, 1.0, 0.9)["kd"]
    assert w.item() == pytest.approx(u * t.item(), rel=1e-12)


@pytest.mark.parametrize("name", ["ttm", "wttm"])
def test_ttm_float32_matches_the_authors_formula(name):
    g = torch.Generator().manual_seed(2)
    z_s, z_t = 3 * torch.randn(64, 100, generator=g), 8 * torch.randn(64, 100, generator=g)
    y = torch.randint(0, 100, (64,), generator=g)
    m = methods.create(name)
    out = m.loss(z_s, z_t, y, *m.temperatures(), alpha=0.9)
    theirs = _authors(z_s.double().numpy(), z_t.double().numpy(), m.gamma, name == "wttm")
    assert out["kd"].item() == pytest.approx(theirs, rel=1e-5)


def test_ttm_alpha_zero_is_the_cross_entropy_alone():
    z_s, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    out = methods.create("ttm").loss(z_s, None, y, 10.0, 1.0, 0.0)
    assert out["kd"].item() == 0.0 and torch.equal(out["loss"], F.cross_entropy(z_s, y))


def test_ttm_options():
    ttm, wttm = methods.create("ttm"), methods.create("wttm")
    assert (ttm.tau_t, ttm.gamma) == (10.0, 0.1)  # the authors' CIFAR-100 example for TTM
    assert (wttm.tau_t, wttm.gamma) == (5.0, 0.2)  # ... and for WTTM
    assert ttm.current() == (10.0, 1.0) and ttm.state_dict() == {"tau_t": 10.0, "tau_s": 1.0}
    # a searcher's single tau comes as tau_t = tau_s: accepted; the student stays at 1
    m = methods.create("ttm", tau_t=3.0, tau_s=3.0)
    assert m.temperatures() == (3.0, 1.0) and m.gamma == 1 / 3
    with pytest.raises(UserError, match=r"tau_s = 2\.0 differs from tau_t = 3\.0.*allowed: tau_s unset, or equal"):
        methods.create("wttm", tau_t=3.0, tau_s=2.0)
    for bad, option in (({"tau_t": 0.0}, "tau_t"), ({"tau_t": -1.0}, "tau_t"), ({"tau_t": float("nan")}, "tau_t")):
        with pytest.raises(UserError, match=rf"{option} = .* is out of range; allowed: \(0, inf\]"):
            methods.create("ttm", **bad)
    with pytest.raises(UserError, match="unknown option.*gamma.*allowed: tau_t, tau_s"):
        methods.create("ttm", gamma=0.1)
    for name, label in (("ttm", "TTM"), ("wttm", "WTTM")):
        cls = methods.METHODS.get(name)
        assert cls.searchable and cls.trains_in_group() and cls.kind == "learned"
        assert methods.info(name)["label"] == label and name in methods.study_methods()


def test_ttm_state_round_trip():
    m = methods.create("wttm", tau_t=4.0)
    m2 = methods.create("wttm")
    m2.load_state_dict(m.state_dict())
    assert (m2.tau_t, m2.gamma, m2.temperatures()) == (4.0, 0.25, (4.0, 1.0))


@pytest.mark.parametrize("name", ["ttm", "wttm"])
def test_ttm_trial_runs(cache, name):
    r = run_trial(dict(dataset="digits", epochs=2, teacher_epochs=1, method=name, cache_dir=cache, device="cpu"))
    assert r["status"] == "ok", r["error"]
    tau = methods.create(name).tau_t
    for row in r["history"]:
        assert (row["tau_t"], row["tau_s"]) == (tau, 1.0)
        assert math.isfinite(row["train_kd"]) and row["train_kd"] > 0
        assert row["train_loss"] == pytest.approx(0.9 * row["train_kd"] + 0.1 * row["train_ce"], rel=1e-5)
    assert r["method_state"] == {"tau_t": tau, "tau_s": 1.0}


def test_ttm_wttm_and_mlkd_train_in_a_group_as_alone(cache):
    """Their own losses in a group of students: each student's result is the one it gets alone."""
    base = dict(dataset="digits", epochs=2, teacher_epochs=1, cache_dir=cache, device="cpu", augment="strong")
    cfgs = [dict(base, method="fixed", tau_t=4.0, tau_s=4.0)] + [dict(base, method=m) for m in ("ttm", "wttm", "mlkd")]
    alone = [run_trial(c) for c in cfgs]
    together = run_trials(cfgs)
    assert [r["grouped"] for r in together] == [4] * 4

    def curve(r):
        keys = ("val_acc", "test_acc", "train_loss", "train_kd", "train_ce", "tau_t", "tau_s")
        return [[row[k] for k in keys] for row in r["history"]]

    for c, a, b in zip(cfgs, alone, together):
        assert a["status"] == b["status"] == "ok", c["method"]
        assert np.array_equal(np.array(curve(a)), np.array(curve(b)), equal_nan=True), c["method"]


# --------------------------------------------------------------------------- studies

STUDY = """
name = "ttm"
seeds = [0]
[train]
epochs = 2
[[settings]]
dataset = "digits"
[methods.grid]
temperatures = [2, 4, 8]
method = "ttm"
[methods.optuna]
trials = 3
method = "wttm"
[methods.ttm]
[methods.nokd]
"""


def test_a_grid_over_ttm_temperatures(study_file, tmp_path, capsys):
    s = load_study(study_file(STUDY))
    trials = s.student_trials()
    grid = [t for t in trials if t.method == "grid"]
    assert [(t.config["method"], t.config["tau_t"], t.config["tau_s"]) for t in grid] == [
        ("ttm", 2.0, 2.0),
        ("ttm", 4.0, 4.0),
        ("ttm", 8.0, 8.0),
    ]
    from hpo_kd.train import TrialConfig, make_method
    from hpo_kd.worker import trial_config

    # each grid temperature reaches TTM as its tau (gamma = 1 / tau), the student at 1
    got = [make_method(TrialConfig(**t.config).resolved()) for t in grid]
    assert [(type(m).name, m.gamma, m.temperatures()) for m in got] == [
        ("ttm", 0.5, (2.0, 1.0)),
        ("ttm", 0.25, (4.0, 1.0)),
        ("ttm", 0.125, (8.0, 1.0)),
    ]
    (search,) = [t for t in trials if t.method == "optuna"]
    assert search.config["method"] == "wttm" and search.budget == 3
    cfg = trial_config({"spec": {"config": search.config}, "tau": 3.5})
    m = make_method(TrialConfig(**cfg).resolved())
    assert type(m).name == "wttm" and m.tau_t == 3.5 and m.gamma == 1 / 3.5
    (alone,) = [t for t in trials if t.method == "ttm"]
    assert alone.config["method"] == "ttm" and "tau_t" not in alone.config  # the authors' tau = 10
    # the dry run expands and checks every trial, then prints the plan
    assert main(["run", study_file(STUDY, "dry.toml"), "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "grid" in out and "ttm" in out and "total:" in out


def test_a_grid_pair_with_a_student_temperature_is_refused_for_ttm(study_file):
    text = STUDY.replace("temperatures = [2, 4, 8]", "pairs = [[4, 4], [4, 2]]")
    with pytest.raises(StudyError, match=r"grid.*tau_s = 2\.0 differs from tau_t = 4\.0"):
        load_study(study_file(text))
    with pytest.raises(StudyError, match="methods.grid.method.*allowed: fixed, lskd, ttm, wttm"):
        load_study(study_file(STUDY.replace('method = "ttm"', 'method = "mlkd"'), "bad.toml"))
