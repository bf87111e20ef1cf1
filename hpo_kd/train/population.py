"""A PBT population trained in one process: Population Based Training (Jaderberg et al., 2017)
with Ray Tune's synchronous rule, its members trained together as the grid's students are.

Per setting and seed, `population` students of the `fixed` method with tau_t = tau_s = tau, their
first tau drawn log-uniformly in [low, high] (`initial_taus`: seeded by the search's `seed` and the
trial's seed). They train in lockstep on the same batches (`trainers`: one `GroupedStudents`
trainer where the student's architecture allows it, else one trainer per member, run in turns,
each on its own random streams). After every `interval` epochs but the last, the members are
ranked by their last val accuracy (`exploit`): the bottom `quantile` (ceil(n * quantile), at most
n / 2; ties go by the members' order) each copy a member of the top quantile drawn at random, its
weights, BatchNorm statistics, optimizer state (momentum), method state and curve so far
(`copy_member`), and explore: tau x1.2 or x0.8, or with `resample_probability` a fresh
log-uniform draw, clamped to [low, high] (`explore`, the rule of Ray Tune's `_explore`). The
decisions come from a generator seeded by the search and the trial seed: the same study makes
the same decisions.

What every member shares with the others (the batch order, the learning-rate schedule, the step
count) is the same in donor and copier, so a copy is a copy of the member's own state only. With
`interval` >= the epochs there is no exploit, and every member's result is the one
`run_trials` gives for its tau.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .config import TrialConfig
from .loop import Member, Trainer
from .trials import as_config, trainers

FACTORS = (1.2, 0.8)


def interval_of(search: Dict[str, Any], epochs: int) -> int:
    """Epochs between perturbations: the table's `interval`, by default a quarter of the epochs."""
    return int(search.get("interval") or max(1, epochs // 4))


def initial_taus(search: Dict[str, Any], seed: int) -> List[float]:
    """The population's first taus: log-uniform in [low, high], seeded by the search and the trial seed."""
    rng = random.Random(search["seed"] * 100003 + seed)
    lo, hi = math.log(search["low"]), math.log(search["high"])
    return [math.exp(rng.uniform(lo, hi)) for _ in range(search["population"])]


def explore(tau: float, search: Dict[str, Any], rng: random.Random) -> float:
    """A perturbed tau: resampled log-uniformly with `resample_probability`, else x1.2 or x0.8,
    clamped to [low, high]."""
    lo, hi = search["low"], search["high"]
    if rng.random() < search["resample_probability"]:
        new = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        new = tau * rng.choice(FACTORS)
    return clamp(new, search)


def clamp(tau: float, search: Dict[str, Any]) -> float:
    return float(min(max(tau, search["low"]), search["high"]))


def quantiles(scores: List[Tuple[int, float]], fraction: float) -> Tuple[List[int], List[int]]:
    """(bottom, top) member indices for (index, score) pairs: ceil(n * fraction) each, at most
    n / 2 (Tune's `_quantiles`); a stable sort, so tied members keep their order."""
    ranked = [i for i, _ in sorted(scores, key=lambda s: s[1])]
    n = int(math.ceil(len(ranked) * fraction))
    n = min(n, len(ranked) // 2)
    return (ranked[:n], ranked[-n:]) if n else ([], [])


def copy_member(src_trainer: Trainer, src: Member, dst_trainer: Trainer, dst: Member, tau: float) -> None:
    """Member `dst` becomes a copy of `src` (an exploit), then trains at `tau`: weights and
    BatchNorm statistics, its parameters' optimizer state, the method's state, and its curve and
    best epoch so far (its curve carries the donor's up to the copy, as its history does)."""
    dst.model.load_state_dict(src.model.state_dict())  # in place: a fused group's views stay views
    for p_src, p_dst in zip(_params(src), _params(dst)):
        state = src_trainer.optimizer.state.get(p_src)
        if state is None:
            dst_trainer.optimizer.state.pop(p_dst, None)
        else:
            dst_trainer.optimizer.state[p_dst] = {
                k: v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in state.items()
            }
    dst.method.load_state_dict(src.method.state_dict())
    dst.method.tau_t = dst.method.tau_s = float(tau)
    dst.history, dst.best, dst.seconds = [dict(r) for r in src.history], dict(src.best), src.seconds


def _params(m: Member) -> List[torch.Tensor]:
    return [p for p in m.model.parameters() if p.requires_grad] + list(m.method.parameters())


def exploit(members: List[Tuple[Trainer, Member]], search: Dict[str, Any], rng: random.Random) -> List[str]:
    """One synchronous PBT decision over the members still training (a diverged one is out):
    each of the bottom quantile copies a random top member and explores its tau. What was done,
    as "copier<-donor tau" lines."""
    scores = [(i, m.history[-1]["val_acc"]) for i, (_, m) in enumerate(members) if m.status == "ok" and m.history]
    bottom, top = quantiles(scores, search["quantile"])
    done = []
    for i in bottom:
        j = rng.choice(top)
        tau = explore(members[j][1].method.tau_t, search, rng)
        copy_member(*members[j], *members[i], tau)
        done.append(f"{i}<-{j} {tau:.4g}")
    return done


def run_population(
    config: TrialConfig | Dict[str, Any],
    search: Dict[str, Any],
    reports: Optional[List[Optional[Callable[[Dict[str, Any]], None]]]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> List[Dict[str, Any]]:
    """Train PBT search `search` (its options: population, interval, quantile, resample_probability,
    low, high, seed) on the trial `config` (method `fixed`; its seed is the trial seed): every
    member's result, in population order, as `run_trials` gives them; `seconds` is the member's
    epochs (training and evaluation), the set-up shared by all."""
    c = as_config(config)
    epochs = c.resolved().epochs
    configs = [dataclasses.replace(c, method="fixed", tau_t=t, tau_s=t) for t in initial_taus(search, c.seed)]
    members: List[Optional[Tuple[Trainer, Member]]] = [None] * len(configs)
    turns = []  # (trainer, its random streams): each trainer trains on its own, as alone
    for idx, trainer in trainers(configs, reports, log):
        turns.append([trainer, _rng_state()])
        for i, m in zip(idx, trainer.members):
            members[i] = (trainer, m)
    rng = random.Random(search["seed"] * 100003 + c.seed + 1)
    interval = interval_of(search, epochs)
    for start in range(0, epochs, interval):
        stop = min(start + interval, epochs)
        for turn in turns:
            _set_rng_state(turn[1])
            turn[0].run(start, stop)
            turn[1] = _rng_state()
        if stop < epochs:
            for line in exploit(members, search, rng):
                log(f"pbt: after epoch {stop}: member {line}")
    place = {id(m): i for i, (_, m) in enumerate(members)}
    results: List[Optional[Dict[str, Any]]] = [None] * len(configs)
    for trainer, _ in turns:
        for m, r in zip(trainer.members, trainer.finish()):
            results[place[id(m)]] = dict(r, seconds=sum(h.get("epoch_seconds", 0.0) for h in r["history"]))
    return results


def _rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
