"""Students trained in a group: each bitwise as alone (hpo_kd.models.grouped, hpo_kd.train.run_trials)."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hpo_kd import models
from hpo_kd import train as train_mod
from hpo_kd.kd import kd_loss
from hpo_kd.methods.base import METHODS
from hpo_kd.methods.fixed import Fixed
from hpo_kd.models import grouped
from hpo_kd.models.grouped import GroupedStudents, bitwise_check, trains_in_groups, why_not_groupable
from hpo_kd.train import run_trial, run_trials

TIMING = {"epoch_seconds", "samples_per_s", "seconds"}
STUDENTS = [
    ("mlp", (1, 8, 8)),
    ("mlp_wide", (1, 8, 8)),
    ("cnn_small", (1, 8, 8)),
    ("cnn_bn", (1, 8, 8)),
    ("cnn_small", (1, 40)),
    ("cnn_bn", (1, 40)),
]


def _members(name, shape, g):
    torch.manual_seed(0)
    proto = models.create(name, shape, 10).train()
    out = [copy.deepcopy(proto) for _ in range(g)]
    with torch.no_grad():  # members that differ, as they do after a few steps at other temperatures
        for i, m in enumerate(out):
            for p in m.parameters():
                p.add_(0.01 * i * torch.randn_like(p))
    return out


@pytest.mark.parametrize("name,shape", STUDENTS)
@pytest.mark.parametrize("g", [2, 5])
@pytest.mark.parametrize("fused", [False, True])
def test_a_group_trains_every_member_bitwise_as_alone(name, shape, g, fused):
    """Own modules: by construction, on any machine. Fused: wherever the guard the trainer asks
    (`bitwise_check`, one step) passes, three steps of KD training are bitwise too."""
    alone = _members(name, shape, g)
    if fused and bitwise_check(alone, torch.randn(64, *shape), torch.randint(0, 10, (64,))):
        pytest.skip("fused kernels are not exact on this machine: the trainer groups own modules")
    together = [copy.deepcopy(m) for m in alone]
    group = GroupedStudents(together, fused)
    opt_alone = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, fused=True) for m in alone]
    opt_group = torch.optim.SGD(
        [p for m in together for p in m.parameters()], lr=0.05, momentum=0.9, weight_decay=5e-4, fused=True
    )
    taus = [1.0, 2.0, 4.0, 16.0, None][:g]  # None: no KD (alpha 0)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(64, *shape, generator=gen)
        y = (
            F.one_hot(torch.randint(0, 10, (64,), generator=gen), 10).float().roll(1, 0) * 0.3
            + F.one_hot(torch.randint(0, 10, (64,), generator=gen), 10).float() * 0.7
        )  # soft (Mixup) targets
        z_t = 3 * torch.randn(64, 10, generator=gen)
        for m, opt, t in zip(alone, opt_alone, taus):
            opt.zero_grad(set_to_none=True)
            kd_loss(m(x), z_t, y, t or 1.0, t or 1.0, 0.9 if t else 0.0)["loss"].backward()
            opt.step()
        z = group(x)
        opt_group.zero_grad(set_to_none=True)
        sum(kd_loss(z[i], z_t, y, t or 1.0, t or 1.0, 0.9 if t else 0.0)["loss"] for i, t in enumerate(taus)).backward()
        opt_group.step()
        for i, m in enumerate(alone):
            with torch.no_grad():
                assert torch.equal(m(x), together[i](x)), f"member {i}: logits"
    group.sync()
    for i, (a, b) in enumerate(zip(alone, together)):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), f"member {i}: {k}"


def test_what_cannot_train_in_a_group_says_why():
    assert why_not_groupable(models.create("resnet8", (3, 32, 32), 100)) == "CifarResNet is not an nn.Sequential"
    assert "not a supported layer" in why_not_groupable(
        nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    )
    assert "end with a linear layer" in why_not_groupable(nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU()))
    assert "momentum None" in why_not_groupable(
        nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4, momentum=None), nn.Flatten(), nn.Linear(4 * 6, 2))
    )
    with pytest.raises(ValueError, match="cannot group"):
        GroupedStudents([models.create("resnet8", (3, 32, 32), 100)] * 2)
    assert trains_in_groups("cnn_bn") and trains_in_groups("mlp")
    assert not trains_in_groups("resnet8") and not trains_in_groups("resnet10t")  # zoo / timm


def test_the_bitwise_check_catches_a_kernel_that_sums_in_another_order(monkeypatch):
    members = _members("cnn_bn", (1, 40), 3)
    x, y = torch.randn(64, 1, 40), torch.randint(0, 10, (64,))
    if bitwise_check(members, x, y):
        pytest.skip("fused kernels are not exact on this machine already")
    before = [copy.deepcopy(m.state_dict()) for m in members]

    # A grouped backward-data that sums in another order than a plain convolution's, as oneDNN's
    # does on some machines: here one ulp off in every element, which the check must see.
    exact = grouped._GroupedConv.backward

    def other_order(ctx, go):
        gx, *rest = exact(ctx, go)
        return (torch.nextafter(gx, torch.full_like(gx, float("inf"))), *rest)

    monkeypatch.setattr(grouped._GroupedConv, "backward", staticmethod(other_order))
    assert bitwise_check(members, x, y).startswith("member 0: gradient of")
    assert bitwise_check(members, x, y, fused=False) is None  # own modules: nothing fused to differ
    for m, b in zip(members, before):  # the check trains copies only
        assert all(torch.equal(v, b[k]) for k, v in m.state_dict().items())


# --------------------------------------------------------------------------- whole trials


def _same(a, b):
    """Two trial results: equal, NaN equal to NaN, timings apart."""

    def norm(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    def strip(r):
        out = {
            k: norm(v)
            for k, v in r.items()
            if k not in TIMING | {"history", "grouped", "group_kernels", "teacher_cached"}
        }
        out["history"] = [{k: norm(v) for k, v in row.items() if k not in TIMING} for row in r["history"]]
        return json.loads(json.dumps(out, sort_keys=True, default=str))

    return strip(a) == strip(b)


def _cfgs(cache, **kw):
    base = dict(
        dataset="mnist1d",
        student="cnn_bn",
        teacher="cnn_small",
        epochs=2,
        teacher_epochs=2,
        cache_dir=cache,
        device="cpu",
        augment="strong",
        eval_bn="recompute",
        data_options={"train_size": 1000, "test_size": 200},
    )
    base.update(kw)
    return [dict(base, method="fixed", tau_t=t, tau_s=t) for t in (1.0, 4.0)] + [
        dict(base, method=m) for m in ("nokd", "dts", "ctkd", "lskd", "mkd")
    ]


def test_students_of_a_seed_trained_together_get_their_results_alone(cache):
    cfgs = _cfgs(cache)
    alone = [run_trial(c) for c in cfgs]
    together = run_trials(cfgs)
    assert [r["grouped"] for r in together] == [6, 6, 6, 6, 6, 6, 1]  # MKD takes over its backward: alone
    assert {r["group_kernels"] for r in together} <= {"fused", "own", None}
    for c, a, b in zip(cfgs, alone, together):
        assert a["status"] == "ok" and _same(a, b), c["method"]


class _NaNLater(Fixed):
    """Non-finite temperatures from the 10th step on."""

    name = "nan_later"

    def __init__(self, tau_t=4.0, tau_s=4.0):
        super().__init__(tau_t, tau_s)
        self.steps = 0

    def temperatures(self):
        self.steps += 1
        return (float("nan"),) * 2 if self.steps > 10 else (self.tau_t, self.tau_s)

    def observe(self, step):
        pass


def test_a_member_that_diverges_stops_and_the_others_go_on(cache, monkeypatch):
    monkeypatch.setitem(METHODS._items, "nan_later", _NaNLater)
    cfgs = _cfgs(cache, augment="none")[:3]
    cfgs.insert(1, dict(cfgs[0], method="nan_later", tau_t=None, tau_s=None))
    alone = [run_trial(c) for c in cfgs]
    together = run_trials(cfgs)
    assert [r["status"] for r in together] == ["ok", "diverged", "ok", "ok"]
    assert "non-finite loss" in together[1]["error"] and together[1]["epochs_run"] == 0
    assert [r["grouped"] for r in together] == [4] * 4
    for a, b in zip(alone, together):
        assert _same(a, b)


def test_where_the_bitwise_check_fails_the_students_train_together_on_their_own_modules(cache, monkeypatch):
    cfgs = _cfgs(cache, augment="none")[:3]
    monkeypatch.setattr(grouped, "bitwise_check", lambda *a: "member 0: gradient of 0.weight")
    said = []
    together = run_trials(cfgs, log=said.append)
    assert [r["grouped"] for r in together] == [3, 3, 3]
    assert [r["group_kernels"] for r in together] == ["own"] * 3
    # (a worker whose first test of this module is this one also logs the teacher's training)
    assert [m for m in said if not m.startswith("training teacher")] == [
        "warning: fused kernels are not bitwise exact here (member 0: gradient of 0.weight): 3 students "
        "of one seed train together on their own modules"
    ]
    monkeypatch.undo()
    assert all(_same(a, run_trial(c)) for a, c in zip(together, cfgs))
    assert run_trial(cfgs[0])["group_kernels"] is None


def test_only_students_that_share_their_batches_train_together(cache):
    cfgs = _cfgs(cache)[:2]
    with pytest.raises(ValueError, match="differ in more than"):
        run_trials([cfgs[0], dict(cfgs[1], seed=1)])
    assert train_mod.group_key(cfgs[0]) == train_mod.group_key(cfgs[1])
    assert train_mod.group_key(cfgs[0]) != train_mod.group_key(dict(cfgs[0], lr=0.2))
