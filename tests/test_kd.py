"""The Hinton KD loss with separate teacher/student temperatures (hpo_kd.kd)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpo_kd.kd import kd_loss, soft_cross_entropy

Z_S = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]]
Z_T = [[2.0, 1.0, 0.0], [0.5, -0.5, 2.5]]
Y = [0, 2]


def _np_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_kd(z_s, z_t, y, tau_t, tau_s, alpha):
    """The documented formula, written out with explicit loops (no torch)."""
    p_t = _np_softmax(np.asarray(z_t) / tau_t)
    p_s = _np_softmax(np.asarray(z_s) / tau_s)
    kl = 0.0
    for b in range(len(y)):
        kl += sum(p_t[b, c] * (math.log(p_t[b, c]) - math.log(p_s[b, c])) for c in range(p_t.shape[1]))
    kl /= len(y)
    q = _np_softmax(z_s)
    ce = -sum(math.log(q[b, y[b]]) for b in range(len(y))) / len(y)
    kd = tau_t * tau_s * kl
    return alpha * kd + (1 - alpha) * ce, kd, ce


def test_kd_loss_matches_hand_computed_value():
    z_s = torch.tensor(Z_S, dtype=torch.float64)
    z_t = torch.tensor(Z_T, dtype=torch.float64)
    y = torch.tensor(Y)
    out = kd_loss(z_s, z_t, y, tau_t=2.0, tau_s=3.0, alpha=0.7)
    loss, kd, ce = _np_kd(Z_S, Z_T, Y, 2.0, 3.0, 0.7)
    assert out["loss"].item() == pytest.approx(loss, rel=1e-12)
    assert out["kd"].item() == pytest.approx(kd, rel=1e-12)
    assert out["ce"].item() == pytest.approx(ce, rel=1e-12)
    # The same numbers as literals (pure-Python math.exp/log on the example, tau_t=2, tau_s=3):
    # KL = 0.0583762953..., CE = 0.7651263439..., kd = 6 * KL, loss = 0.7 * kd + 0.3 * CE.
    assert out["kd"].item() == pytest.approx(0.3502577719332387, rel=1e-12)
    assert out["ce"].item() == pytest.approx(0.765126343932687, rel=1e-12)
    assert out["loss"].item() == pytest.approx(0.4747183435330732, rel=1e-12)


def test_kd_loss_float32_matches_float64_reference():
    out = kd_loss(torch.tensor(Z_S), torch.tensor(Z_T), torch.tensor(Y), tau_t=4.0, tau_s=1.5, alpha=0.9)
    loss, _, _ = _np_kd(Z_S, Z_T, Y, 4.0, 1.5, 0.9)
    assert out["loss"].item() == pytest.approx(loss, rel=1e-5)


def test_equal_temperatures_give_t_squared_kl():
    g = torch.Generator().manual_seed(0)
    z_s = torch.randn(5, 7, generator=g, dtype=torch.float64)
    z_t = torch.randn(5, 7, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 7, (5,), generator=g)
    T = 3.5
    p_t = _np_softmax(z_t.numpy() / T)
    p_s = _np_softmax(z_s.numpy() / T)
    kl = float(np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1)))
    out = kd_loss(z_s, z_t, y, tau_t=T, tau_s=T, alpha=0.5)
    assert out["kd"].item() == pytest.approx(T * T * kl, rel=1e-10)
    # Zero when the student's softened distribution equals the teacher's.
    same = kd_loss(z_t.clone(), z_t, y, tau_t=T, tau_s=T, alpha=0.5)
    assert abs(same["kd"].item()) < 1e-12


def test_temperature_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(1)
    z_s = torch.randn(6, 5, generator=g, dtype=torch.float64)
    z_t = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 5, (6,), generator=g)
    tau_t = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    tau_s = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    loss = kd_loss(z_s, z_t, y, tau_t, tau_s, alpha=0.8)["loss"]
    g_t, g_s = torch.autograd.grad(loss, (tau_t, tau_s))

    def f(tt, ts):
        return kd_loss(z_s, z_t, y, tt, ts, alpha=0.8)["loss"].item()

    h = 1e-5
    fd_t = (f(2.5 + h, 1.7) - f(2.5 - h, 1.7)) / (2 * h)
    fd_s = (f(2.5, 1.7 + h) - f(2.5, 1.7 - h)) / (2 * h)
    assert abs(fd_t) > 1e-3 and abs(fd_s) > 1e-3  # a non-trivial check
    assert abs(g_t.item() - fd_t) / abs(fd_t) < 1e-5
    assert abs(g_s.item() - fd_s) / abs(fd_s) < 1e-5


def test_soft_one_hot_targets_equal_class_indices():
    g = torch.Generator().manual_seed(2)
    z_s = torch.randn(8, 10, generator=g, dtype=torch.float64)
    z_t = torch.randn(8, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=g)
    onehot = F.one_hot(y, 10).double()
    assert soft_cross_entropy(z_s, onehot).item() == pytest.approx(F.cross_entropy(z_s, y).item(), rel=1e-12)
    a = kd_loss(z_s, z_t, y, 2.0, 3.0, 0.6)
    b = kd_loss(z_s, z_t, onehot, 2.0, 3.0, 0.6)
    for k in ("loss", "kd", "ce"):
        assert a[k].item() == pytest.approx(b[k].item(), rel=1e-12)
    # A genuinely soft (Mixup) target: CE is the lam-weighted mix of the two hard CEs.
    y2 = torch.roll(y, 1)
    lam = 0.3
    soft = lam * onehot + (1 - lam) * F.one_hot(y2, 10).double()
    ce_mix = lam * F.cross_entropy(z_s, y) + (1 - lam) * F.cross_entropy(z_s, y2)
    assert kd_loss(z_s, z_t, soft, 2.0, 3.0, 0.6)["ce"].item() == pytest.approx(ce_mix.item(), rel=1e-12)


def test_alpha_zero_is_plain_cross_entropy():
    g = torch.Generator().manual_seed(3)
    z_s = torch.randn(4, 3, generator=g)
    z_t = torch.randn(4, 3, generator=g)
    y = torch.tensor([0, 1, 2, 1])
    out = kd_loss(z_s, z_t, y, 2.0, 5.0, alpha=0.0)
    assert out["loss"].item() == pytest.approx(out["ce"].item(), rel=0, abs=0)
    assert out["loss"].item() == pytest.approx(F.cross_entropy(z_s, y).item(), rel=1e-6)
    assert out["kd"].item() == 0.0
    # alpha = 1 is pure KD.
    one = kd_loss(z_s, z_t, y, 2.0, 5.0, alpha=1.0)
    assert one["loss"].item() == pytest.approx(one["kd"].item(), rel=1e-6)


# --------------------------------------------------------------------------- per-sample temperatures


def _loop_kd(z_s, z_t, tau_t, tau_s, factor):
    """Each sample alone: F.kl_div on one row at that row's temperatures, times its factor; then
    the batch mean (an independent computation of kd_per_sample + mean)."""
    terms = []
    for b in range(len(z_s)):
        log_q = F.log_softmax(z_s[b : b + 1] / float(tau_s[b]), dim=-1)
        p = F.softmax(z_t[b : b + 1] / float(tau_t[b]), dim=-1)
        terms.append(float(factor[b]) * F.kl_div(log_q, p, reduction="sum").item())
    return terms


def test_per_sample_kd_matches_a_loop_over_single_rows():
    from hpo_kd.kd import kd_per_sample

    g = torch.Generator().manual_seed(4)
    z_s = torch.randn(7, 5, generator=g, dtype=torch.float64)
    z_t = 3 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (7,), generator=g)
    tau_t = 0.5 + 4 * torch.rand(7, generator=g, dtype=torch.float64)
    tau_s = 0.5 + 4 * torch.rand(7, generator=g, dtype=torch.float64)
    factor = 0.5 + 9 * torch.rand(7, generator=g, dtype=torch.float64)
    terms = _loop_kd(z_s, z_t, tau_t, tau_s, factor)
    got = kd_per_sample(z_s, z_t, tau_t, tau_s, factor)
    assert got.shape == (7,)
    assert got.tolist() == pytest.approx(terms, rel=1e-10)
    # The default factor is each sample's tau_t * tau_s; kd_loss takes (B,) temperatures that way.
    default = _loop_kd(z_s, z_t, tau_t, tau_s, tau_t * tau_s)
    assert kd_per_sample(z_s, z_t, tau_t, tau_s).tolist() == pytest.approx(default, rel=1e-10)
    out = kd_loss(z_s, z_t, y, tau_t, tau_s, alpha=0.7)
    assert out["kd"].item() == pytest.approx(sum(default) / 7, rel=1e-10)
    assert out["loss"].item() == pytest.approx(0.7 * sum(default) / 7 + 0.3 * F.cross_entropy(z_s, y).item(), rel=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equal_per_sample_temperatures_equal_the_batch_form(dtype):
    # Not bitwise: the batch form scales the batch-mean KL by tau_t * tau_s once, the per-sample
    # form scales each row's KL and then takes the mean: the same sum, rounded in another order.
    g = torch.Generator().manual_seed(5)
    z_s = torch.randn(9, 6, generator=g, dtype=dtype)
    z_t = 2 * torch.randn(9, 6, generator=g, dtype=dtype)
    y = torch.randint(0, 6, (9,), generator=g)
    batch = kd_loss(z_s, z_t, y, 2.5, 3.0, alpha=0.8)
    per = kd_loss(z_s, z_t, y, torch.full((9,), 2.5, dtype=dtype), torch.full((9,), 3.0, dtype=dtype), alpha=0.8)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    for k in ("loss", "kd", "ce"):
        assert torch.allclose(per[k], batch[k], rtol=rtol, atol=0), k


def test_standardized_temperature_is_kd_on_z_scored_logits():
    """A StandardizedTemperature(T) is T times each row's std (n - 1, + 1e-7): KD at it is KD at T
    on the z-scored logits, with the factor T * T (not the per-sample temperatures' product)."""
    from hpo_kd.kd import StandardizedTemperature

    g = torch.Generator().manual_seed(6)
    z_s = torch.randn(8, 10, generator=g, dtype=torch.float64)
    z_t = 4 * torch.randn(8, 10, generator=g, dtype=torch.float64) + 3
    y = torch.randint(0, 10, (8,), generator=g)
    rule = StandardizedTemperature(2.0)
    n = z_t.shape[1]
    mu = z_t.mean(-1, keepdim=True)
    sd = (((z_t - mu) ** 2).sum(-1) / (n - 1)).sqrt()
    assert rule(z_t).tolist() == pytest.approx((2.0 * (sd + 1e-7)).tolist(), rel=1e-12)

    def z(v):
        m = v.mean(-1, keepdim=True)
        return (v - m) / (1e-7 + (((v - m) ** 2).sum(-1, keepdim=True) / (n - 1)).sqrt())

    out = kd_loss(z_s, z_t, y, rule, StandardizedTemperature(2.0), alpha=0.6)
    ref = kd_loss(z(z_s), z(z_t), y, 2.0, 2.0, alpha=1.0)["kd"]
    assert out["kd"].item() == pytest.approx(ref.item(), rel=1e-10)
    assert out["loss"].item() == pytest.approx(0.6 * ref.item() + 0.4 * F.cross_entropy(z_s, y).item(), rel=1e-10)
    # A rule for one side and a number for the other: the number is its own factor.
    mixed = kd_loss(z_s, z_t, y, rule, 3.0, alpha=1.0)["kd"]
    loop = _loop_kd(z_s, z_t, rule(z_t), torch.full((8,), 3.0), torch.full((8,), 6.0))
    assert mixed.item() == pytest.approx(sum(loop) / 8, rel=1e-10)
