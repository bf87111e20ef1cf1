"""Temperature methods: MKD's hypergradient, DTS's rule, CTKD's reversal, and all methods end to end."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hpo_kd import methods
from hpo_kd.errors import UserError
from hpo_kd.kd import kd_loss
from hpo_kd.methods import Step, TrialContext
from hpo_kd.methods.ctkd import CTKD, GradientReversal, reversal_factor
from hpo_kd.methods.dts import next_temperature
from hpo_kd.methods.mkd import MKD
from hpo_kd.train import run_trial

ETA = 0.5
ALPHA = 0.9


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --------------------------------------------------------------------------- MKD


def _problem(seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    dt = torch.get_default_dtype()
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    x = torch.randn(16, 6, generator=g, dtype=dt)
    y = torch.randint(0, 4, (16,), generator=g)
    z_t = 3 * torch.randn(16, 4, generator=g, dtype=dt)
    xm = torch.randn(12, 6, generator=g, dtype=dt)
    ym = torch.randint(0, 4, (12,), generator=g)
    return model, x, y, z_t, xm, ym


def _mkd(model, xm, ym, **options):
    options = {"tau_t": 2.0, "tau_s": 3.0, **options}
    m = methods.create("mkd", **options)
    ctx = TrialContext(
        model=model,
        epochs=1,
        steps_per_epoch=1,
        alpha=ALPHA,
        device=torch.device("cpu"),
        meta_batches=lambda: itertools.repeat((xm, ym)),
        lr=lambda: ETA,
    )
    m.setup(ctx)
    return m


def _step(m, model, x, y, z_t, step=0):
    """The trainer's forward for one step (see hpo_kd.train.fit)."""
    tau_t, tau_s = m.temperatures()
    z_s = model(x)
    losses = kd_loss(z_s, z_t, y, tau_t, tau_s, ALPHA)
    for p in model.parameters():
        p.grad = None  # the trainer's optimizer.zero_grad(set_to_none=True)
    return Step(
        epoch=1,
        step=step,
        x=x,
        target=y,
        student_logits=z_s,
        teacher_logits=z_t,
        losses=losses,
        tau_t=tau_t,
        tau_s=tau_s,
        lr=ETA,
    )


def _lookahead_meta_loss(model, x, y, z_t, xm, ym, log_tau_t, log_tau_s, eta=ETA):
    """CE on the meta batch of theta' = theta - eta * grad_theta L(theta, tau), recomputed from scratch."""
    params = dict(model.named_parameters())
    loss = kd_loss(model(x), z_t, y, math.exp(log_tau_t), math.exp(log_tau_s), ALPHA)["loss"]
    grads = torch.autograd.grad(loss, list(params.values()))
    new = {n: p.detach() - eta * g for (n, p), g in zip(params.items(), grads)}
    return F.cross_entropy(functional_call(model, new, (xm,)), ym).item()


def _fd_hypergradient(model, x, y, z_t, xm, ym, lt, ls, h=1e-5):
    def f(a, b):
        return _lookahead_meta_loss(model, x, y, z_t, xm, ym, a, b)

    d_t = (f(lt + h, ls) - f(lt - h, ls)) / (2 * h)
    d_s = (f(lt, ls + h) - f(lt, ls - h)) / (2 * h)
    return d_t, d_s


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_mkd_exact_hypergradient_matches_finite_differences(float64, seed):
    model, x, y, z_t, xm, ym = _problem(seed)
    m = _mkd(model, xm, ym)
    assert m.log_tau_t.dtype == torch.float64
    step = _step(m, model, x, y, z_t)
    hyper, meta = m.hypergradient(step, xm, ym, ETA)
    lt, ls = math.log(2.0), math.log(3.0)
    fd_t, fd_s = _fd_hypergradient(model, x, y, z_t, xm, ym, lt, ls)
    assert abs(fd_t) > 1e-4 and abs(fd_s) > 1e-4  # a non-trivial problem
    assert _rel(hyper[0].item(), fd_t) < 1e-3, (hyper[0].item(), fd_t)
    assert _rel(hyper[1].item(), fd_s) < 1e-3, (hyper[1].item(), fd_s)
    assert meta == pytest.approx(_lookahead_meta_loss(model, x, y, z_t, xm, ym, lt, ls), rel=1e-10)
    # As a side effect the student's .grad is the step's ordinary gradient.
    loss = kd_loss(model(x), z_t, y, 2.0, 3.0, ALPHA)["loss"]
    ref = torch.autograd.grad(loss, list(model.parameters()))
    for p, g in zip(model.parameters(), ref):
        assert torch.allclose(p.grad, g, rtol=1e-10, atol=1e-12)


def test_mkd_first_order_is_close_to_exact(float64):
    model, x, y, z_t, xm, ym = _problem(0)
    m_exact = _mkd(model, xm, ym)
    h_exact, meta_exact = m_exact.hypergradient(_step(m_exact, model, x, y, z_t), xm, ym, ETA)
    grads_exact = [p.grad.clone() for p in model.parameters()]
    m_fo = _mkd(model, xm, ym, first_order=True)
    h_fo, meta_fo = m_fo.hypergradient(_step(m_fo, model, x, y, z_t), xm, ym, ETA)
    assert meta_fo == pytest.approx(meta_exact, rel=1e-10)
    for a, b in zip(h_fo, h_exact):
        assert _rel(a.item(), b.item()) < 5e-2, (a.item(), b.item())
    # The first-order path also leaves the ordinary gradient in .grad (not accumulated twice).
    for p, g in zip(model.parameters(), grads_exact):
        assert torch.allclose(p.grad, g, rtol=1e-10, atol=1e-12)


def test_mkd_learn_one_temperature(float64):
    model, x, y, z_t, xm, ym = _problem(0)
    m = _mkd(model, xm, ym, learn="tau_s")
    hyper, _ = m.hypergradient(_step(m, model, x, y, z_t), xm, ym, ETA)
    assert len(hyper) == 1
    _, fd_s = _fd_hypergradient(model, x, y, z_t, xm, ym, math.log(2.0), math.log(3.0))
    assert _rel(hyper[0].item(), fd_s) < 1e-3
    # A full meta step moves tau_s only, against the hypergradient.
    m2 = _mkd(model, xm, ym, learn="tau_s", meta_lr=0.1)
    m2.backward(_step(m2, model, x, y, z_t))
    t, s = m2.current()
    assert t == 2.0
    assert (s - 3.0) * hyper[0].item() < 0


def test_mkd_clamp_holds_with_huge_meta_lr():
    model, x, y, z_t, xm, ym = _problem(3)
    lo, hi = 1.0, 5.0
    m = _mkd(model, xm, ym, meta_lr=50.0, tau_min=lo, tau_max=hi)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hit = set()
    for k in range(40):
        step = _step(m, model, x, y, z_t, step=k)
        m.backward(step)
        opt.step()
        for t in m.current():
            assert lo * (1 - 1e-6) <= t <= hi * (1 + 1e-6)
            if math.isclose(t, lo, rel_tol=1e-6) or math.isclose(t, hi, rel_tol=1e-6):
                hit.add(round(t, 3))
        # The stored log temperatures lie within the bounds as rounded to their dtype.
        for p in (m.log_tau_t, m.log_tau_s):
            b_lo, b_hi = (torch.tensor(math.log(v), dtype=p.dtype).item() for v in (lo, hi))
            assert b_lo <= p.item() <= b_hi
    assert hit, "a meta step of size 50 in log space should have reached a bound"
    assert len(m._meta_losses) == 40


def test_mkd_every_k_steps():
    model, x, y, z_t, xm, ym = _problem(0)
    m = _mkd(model, xm, ym, every=4)
    taus = []
    for k in range(8):
        step = _step(m, model, x, y, z_t, step=k)
        # Off-meta steps hand out detached temperatures.
        assert step.tau_t.requires_grad == (k % 4 == 0)
        m.backward(step)
        taus.append(m.current())
    assert len(m._meta_losses) == 2
    assert taus[0] == taus[1] == taus[2] == taus[3] != taus[4]
    assert "meta_loss" in m.epoch_metrics()


@pytest.mark.parametrize("seed", [0, 1])
def test_mkd_lowers_a_too_high_student_temperature(cache, seed):
    # With tau_t = 1 and tau_s = 15 the KD term asks the student for logits ~15x the teacher's
    # before its softened outputs match, so the look-ahead student improves its meta CE faster
    # when tau_s comes down; MKD must move tau_s down (checked robust over seeds 0-3 and 3-5
    # epochs: final tau_s 4.5-7.1).
    r = run_trial(
        dict(
            dataset="digits",
            epochs=3,
            teacher_epochs=2,
            method="mkd",
            tau_t=1.0,
            tau_s=15.0,
            method_options={"learn": "tau_s"},
            seed=seed,
            cache_dir=cache,
            device="cpu",
        )
    )
    assert r["status"] == "ok"
    taus = [row["tau_s"] for row in r["history"]]
    assert taus[-1] < 0.75 * 15.0, taus
    assert taus == sorted(taus, reverse=True)
    assert all(row["tau_t"] == 1.0 for row in r["history"])


def test_mkd_trial_respects_bounds(cache):
    r = run_trial(
        dict(
            dataset="digits",
            epochs=2,
            teacher_epochs=2,
            method="mkd",
            tau_t=4.0,
            tau_s=4.0,
            method_options={"meta_lr": 5.0, "tau_min": 2.0, "tau_max": 6.0},
            cache_dir=cache,
            device="cpu",
        )
    )
    assert r["status"] == "ok"
    for row in r["history"]:
        for k in ("tau_t", "tau_s"):
            assert 2.0 * (1 - 1e-6) <= row[k] <= 6.0 * (1 + 1e-6)


# --------------------------------------------------------------------------- DTS


def test_dts_rule_by_hand():
    # T0 = 4, T_min = 1, T_max = 5, epochs = 10, momentum 0.9, cap 1.35 above ratio 2.
    # c(epoch) = 0.5 * (1 + cos(pi * epoch / 10)): c(5) = 0.5, c(10) = 0, c(1) = 0.97552826.
    # ratio = gap / (gap + 1), gap = ce_teacher - ce_student.
    # 1. gap -0.5 -> ratio -1: no boost; T* = 4 * 0.5 = 2;             T = 0.9*4     + 0.1*2   = 3.8
    # 2. gap -3   -> ratio 1.5: boost s = 1.5; T* = 4 * 0.5 * 1.5 = 3; T = 0.9*3.8   + 0.1*3   = 3.72
    # 3. gap -1.5 -> ratio 3 > 2: capped s = 1.35; T* = 2.7;           T = 0.9*3.72  + 0.1*2.7 = 3.618
    # 4. gap -0.5 at epoch 10: T* = 0 -> clamped to T_min = 1;         T = 0.9*3.618 + 0.1*1   = 3.3562
    # 5. gap -1.5 at epoch 1: T* = 4 * 0.9755 * 1.35 = 5.268 -> T_max = 5; T = 0.9*3.3562 + 0.5 = 3.52058
    rule = dict(T0=4.0, T_min=1.0, T_max=5.0, curve=1.0, adjust=True, cap=1.35, cap_above=2.0, momentum=0.9)
    steps = [(0.5, 1.0, 5), (0.5, 3.5, 5), (0.5, 2.0, 5), (0.5, 1.0, 10), (0.5, 2.0, 1)]
    expected = [3.8, 3.72, 3.618, 3.3562, 3.52058]
    T = 4.0
    for (ce_t, ce_s, epoch), want in zip(steps, expected):
        T = next_temperature(T, ce_t, ce_s, epoch, 10, **rule)
        assert T == pytest.approx(want, abs=1e-12)


def test_dts_rule_switches():
    base = dict(T0=4.0, T_min=1.0, T_max=5.0, momentum=0.0, adjust=True)
    # momentum 0 gives T* itself; adjust=False (the default, as in the authors' code) never boosts.
    assert next_temperature(9.0, 0.5, 3.5, 5, 10, **base) == pytest.approx(3.0)
    assert next_temperature(9.0, 0.5, 3.5, 5, 10, **dict(base, adjust=False)) == pytest.approx(2.0)
    assert next_temperature(9.0, 0.5, 3.5, 5, 10, T0=4.0, T_min=1.0, T_max=5.0, momentum=0.0) == pytest.approx(2.0)
    # gap = -1 (division by zero) is no boost.
    assert next_temperature(9.0, 0.5, 1.5, 5, 10, **base) == pytest.approx(2.0)
    # A teacher worse than the student (gap > 0): ratio < 1, no boost.
    assert next_temperature(9.0, 2.0, 0.5, 5, 10, **base) == pytest.approx(2.0)


def test_dts_method_follows_its_rule(cache):
    r = run_trial(
        dict(
            dataset="digits",
            epochs=2,
            teacher_epochs=2,
            method="dts",
            tau_t=4.0,
            method_options={"T_min": 2.0, "T_max": 4.0},
            cache_dir=cache,
            device="cpu",
        )
    )
    assert r["status"] == "ok"
    taus = [row["tau_t"] for row in r["history"]]
    assert all(2.0 <= t <= 4.0 for t in taus)
    # The cosine schedule ends at c = 0 -> T* = T_min: the temperature decreases.
    assert taus[-1] < taus[0] < 4.0
    assert all(row["tau_s"] == row["tau_t"] for row in r["history"])


# --------------------------------------------------------------------------- CTKD


def test_gradient_reversal():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (g_plain,) = torch.autograd.grad((x**2).sum(), x)
    (g_rev,) = torch.autograd.grad((GradientReversal.apply(x, -1.0) ** 2).sum(), x)
    (g_zero,) = torch.autograd.grad((GradientReversal.apply(x, 0.0) ** 2).sum(), x)
    (g_half,) = torch.autograd.grad((GradientReversal.apply(x, 0.5) ** 2).sum(), x)
    assert torch.equal(g_rev, -g_plain)
    assert torch.equal(g_zero, torch.zeros(3))
    assert torch.equal(g_half, 0.5 * g_plain)
    assert torch.equal(GradientReversal.apply(x, -1.0), x)  # identity forward


def test_reversal_factor_ramp():
    got = [reversal_factor(e, 10) for e in (0, 5, 10, 15)]
    assert got == pytest.approx([0.0, -0.5, -1.0, -1.0], abs=1e-12)
    assert reversal_factor(3, 0) == -1.0
    # Monotone on the way down.
    ramp = [reversal_factor(e, 10) for e in range(11)]
    assert all(a > b for a, b in zip(ramp, ramp[1:]))


def test_ctkd_temperature_bounds_and_reversal():
    m = CTKD(tau_t=4.0, T_lo=1.0, T_span=20.0)
    assert m.current() == pytest.approx((4.0, 4.0), rel=1e-6)
    for w in (-30.0, -5.0, 0.0, 5.0, 30.0):
        with torch.no_grad():
            m.w.fill_(w)
        T = m.temperature().item()
        assert 1.0 <= T <= 21.0
        if abs(w) <= 5:
            assert 1.0 < T < 21.0
    # With lambda = -1 the temperature's gradient points up the loss it feeds.
    with torch.no_grad():
        m.w.fill_(0.0)
    m.start_epoch(100)
    assert m.lam == -1.0
    T = m.temperature()
    loss = (T - 3.0) ** 2  # increasing in T at T = 11
    (g,) = torch.autograd.grad(loss, m.w)
    assert g.item() < 0  # a descent step on w raises T, i.e. raises the loss
    m.start_epoch(0)
    (g0,) = torch.autograd.grad((m.temperature() - 3.0) ** 2, m.w)
    assert g0.item() == 0.0
    with pytest.raises(UserError):
        CTKD(tau_t=0.5, T_lo=1.0)


def test_ctkd_authors_start_and_schedule():
    # The authors' parameter starts at w = 1: T = 1 + 20 * sigmoid(1).
    m = CTKD()
    assert m.current()[0] == pytest.approx(1 + 20 / (1 + math.exp(-1)), abs=1e-6)
    assert m.current()[0] == pytest.approx(15.62, abs=0.01)
    # Their cosine, over epochs counted from 1, reaches -1 at epoch 10 (ramp_epochs), not 11.
    lams = []
    for e in range(1, 12):
        m.start_epoch(e)
        lams.append(m.lam)
    assert lams[9] == -1.0 and lams[8] > -1.0
    assert lams[0] == pytest.approx(-0.5 * (1 - math.cos(math.pi / 10)), abs=1e-12)


@pytest.mark.parametrize(
    "method,option", [("dts", "tau_s"), ("ctkd", "tau_s"), ("nokd", "tau_t"), ("dts", "T0"), ("ctkd", "init_T")]
)
def test_a_temperature_a_method_does_not_use_is_an_error(method, option):
    from hpo_kd import methods

    with pytest.raises(UserError, match=option):
        methods.create(method, **{option: 3.0})


def test_ctkd_trial_stays_in_range(cache):
    r = run_trial(
        dict(
            dataset="digits",
            epochs=3,
            teacher_epochs=2,
            method="ctkd",
            tau_t=4.0,
            method_options={"ramp_epochs": 2},
            cache_dir=cache,
            device="cpu",
        )
    )
    assert r["status"] == "ok"
    hist = r["history"]
    assert [row["lambda"] for row in hist] == pytest.approx([-0.5, -1.0, -1.0])
    for row in hist:
        assert 1.0 < row["tau_t"] < 21.0 and row["tau_s"] == row["tau_t"]
    assert hist[-1]["tau_t"] != pytest.approx(4.0, rel=1e-4)


# --------------------------------------------------------------------------- all methods


@pytest.mark.parametrize("dataset", ["digits", "mnist1d"])
@pytest.mark.parametrize("method", ["fixed", "nokd", "mkd", "dts", "ctkd", "lskd"])
def test_every_method_runs(cache, dataset, method):
    rows = []
    r = run_trial(
        dict(dataset=dataset, epochs=2, teacher_epochs=1, method=method, cache_dir=cache, device="cpu"),
        report=rows.append,
    )
    assert r["status"] == "ok", r["error"]
    assert len(r["history"]) == 2 and rows == r["history"]
    for row in r["history"]:
        assert {"tau_t", "tau_s", "val_acc", "test_acc", "train_loss", "lr"} <= set(row)
        if method == "nokd":
            assert math.isnan(row["tau_t"]) and math.isnan(row["tau_s"])
            # every method logs the same terms; without KD the KD term is exactly zero
            assert row["train_kd"] == 0.0 and row["train_loss"] == row["train_ce"]
        else:
            assert math.isfinite(row["tau_t"]) and math.isfinite(row["tau_s"])
            assert "train_kd" in row
        assert ("meta_loss" in row) == (method == "mkd")
        if method == "mkd":
            assert math.isfinite(row["meta_loss"]) and row["meta_loss"] > 0
        assert 0.0 <= row["val_acc"] <= 1.0
    assert (r["teacher_cached"] is None) == (method == "nokd")
    if method == "fixed":
        assert r["tau_t"] == 4.0 and r["tau_s"] == 4.0


def test_unknown_method_option_lists_allowed():
    with pytest.raises(UserError) as e:
        methods.create("mkd", speed=2)
    msg = str(e.value)
    assert "speed" in msg and "'mkd'" in msg
    for opt in ("tau_t", "tau_s", "learn", "meta_lr", "every", "first_order", "tau_min", "tau_max"):
        assert opt in msg
    with pytest.raises(UserError) as e:
        methods.create("dts", tau=2)
    assert "T_min" in str(e.value) and "momentum" in str(e.value)
    with pytest.raises(UserError) as e:
        methods.create("nonexistent")
    assert "fixed" in str(e.value) and "ctkd" in str(e.value)
    assert methods.options_of("mkd")["every"] == 1


def test_mkd_meta_augment_sends_its_meta_batches_through_the_trials_augmentation(tmp_path):
    """meta_augment: the meta objective sees augmented meta batches (Mixup's soft targets under
    strong augmentation); the training batches are the same as without it (their own draws)."""
    from hpo_kd.train import run_trial

    seen = []
    real = MKD._meta_loss

    def spy(self, params, x, y):
        seen.append((self.meta_augment, y.dim()))
        return real(self, params, x, y)

    base = dict(
        dataset="digits",
        augment="strong",
        epochs=1,
        teacher_epochs=1,
        method="mkd",
        cache_dir=str(tmp_path),
        device="cpu",
    )
    import unittest.mock as mock

    from hpo_kd.train import logits as logits_mod

    replays = []
    real_finish = logits_mod._AugmentedTeacher.finish

    def finish(self, complete):
        replays.append((self.reused, self.step))
        return real_finish(self, complete)

    logits_mod._AUG_LOGITS.clear()
    with mock.patch.object(MKD, "_meta_loss", spy), mock.patch.object(logits_mod._AugmentedTeacher, "finish", finish):
        plain = run_trial(base)
        aug = run_trial(dict(base, method_options={"meta_augment": True}))
    logits_mod._AUG_LOGITS.clear()
    assert {d for a, d in seen if not a} == {1} and {d for a, d in seen if a} == {2}  # class ids vs soft targets
    # the training batches are those of the run without it: the teacher's recorded logits all fit
    assert replays[1][0] == replays[1][1] == replays[0][1] > 0
    assert plain["status"] == aug["status"] == "ok" and plain["tau_t"] != aug["tau_t"]
