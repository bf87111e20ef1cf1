"""PBT through Ray Tune (`[methods.pbt] grouped = false`): each search one population trained
under Ray Tune's `PopulationBasedTraining` in a Tuner of its own. (By default a population trains
in one process: `hpo_kd.train.population`, whose rules for the first taus and the interval this
module shares.)

Per setting and seed, `population` students of the `fixed` method with tau_t = tau_s = tau,
their first tau drawn log-uniformly in [low, high] (seeded by the table's `seed` and the trial's
seed: the same study draws the same taus). Every `interval` epochs (default a quarter of the
epochs, at least 1) the bottom `quantile` of the population (by val accuracy) copies a member
of the top quantile: its weights, optimiser, LR schedule, method state, batch-order generator
and curve so far (`Trainer.state`/`load_state`), then explores: tau x1.2 or x0.8, or with
`resample_probability` a fresh log-uniform draw, clamped to [low, high] (Tune's `_explore`,
with `clamp`).

The trainable (`pbt_fn`) is the plain trial's trainer (`hpo_kd.train.student_trainer`, a
`Trainer`) run a few epochs at a time (`Trainer.run(start, stop, on_epoch)`); it reports once
per epoch (`time_attr="training_iteration"`) and saves a `ray.tune.Checkpoint` (`Trainer.state`)
at every perturbation epoch; it resumes from `tune.get_checkpoint()` (`Trainer.load_state`)
with the tau of its (new) config.

Tune's restrictions, and what this module does about them:
- PBT refuses a search algorithm in its Tuner, and the study's main Tuner has one (its
  StudySearcher): every PBT search runs in a Tuner of its own, after the main one (its teacher
  is then trained and cached), its members a `grid_search` over the drawn taus.
- An exploit needs the donor's checkpoint: a member that never checkpointed cannot be copied
  (Tune logs "no checkpoint ... Skip exploit" and the member goes on with its own state). Every
  member checkpoints at every perturbation epoch, and `synch=True` makes PBT decide only when
  all members have reached it, so every donor has one.
- `reuse_actors=True`: a member paused at a perturbation epoch goes on in a kept worker process,
  restored from its (or its donor's) checkpoint, instead of a new process that imports torch and
  loads its data and teacher again (3.6x less wall time on a small search, the same results to
  the last digit). `student_trainer` seeds everything and `load_state` restores every generator, so
  nothing of a previous member carries over.
- `num_to_keep`: a donor's checkpoint must still exist when the copier restores it (it may be
  paused and restart later). All are kept (`num_to_keep=None`) in a temporary folder that is
  removed with the Tuner; they are small, and only the perturbation epochs have one.
- PBT pauses members at each perturbation epoch (synch) while the others catch up; with fewer
  slots than members the paused ones free their slots for the pending ones, so a population
  larger than the machine still runs (in turns), only slower. But the Tuner must not cap its
  concurrent trials (`max_concurrent_trials`): the variant generator would then create the
  later members only when a slot frees, and PBT, which knows only the members created so far,
  would decide among the first ones alone (seen: the 3rd of 3 members never compared). The
  slots are limited by the trial's resources instead.
- Perturbing at the last epoch would pause a member that has finished: the Tuner stops every
  member at `training_iteration == epochs` (its `stop` criterion, checked before the scheduler).
- Tune's PBT draws its decisions (which member to copy, which factor, whether to resample) from
  its module's global `random`, which other driver code also draws from: during a search that
  module name is pointed at a `random.Random` seeded by the search and the trial seed (restored
  afterwards). With `synch` the decisions depend on the results and the trials' order only, not
  on which member reported first; ties in val accuracy go by the members' order.

Store: every member's final row goes to the store as an Optuna search's trials do (method
`pbt`, `trial_index` = its place in the population, its final tau), with its per-epoch curve,
the tau of each epoch included (a member that copied another carries the donor's curve up to the
copy: the chosen member's tau schedule is in its curve). Cost: the population's epochs.

Resume: a search with all its members in the store is never run again; an unfinished one (the
study was interrupted mid-search) is run again whole, its partial rows replaced (a population's
state is not in the store, and the members depend on each other).
"""

from __future__ import annotations

import io
import math
import os
import random
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional

from ..train.population import FACTORS, clamp, initial_taus, interval_of

TIME_ATTR = "training_iteration"


# ---------------------------------------------------------------------- a member's state (no Ray)


def load_state(trainer, s: Dict[str, Any], tau: Optional[float]) -> int:
    """Restore a saved `Trainer.state` into a fresh member's trainer; tau (the member's config
    after explore) wins over the saved one. The epoch to go on after."""
    start = trainer.load_state(s)
    method = trainer.members[0].method
    if tau is not None and hasattr(method, "tau_t"):
        method.tau_t = method.tau_s = float(tau)
    return start


def save_bytes(s: Dict[str, Any]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(s, buf)
    return buf.getvalue()


def load_bytes(b: bytes) -> Dict[str, Any]:
    import torch

    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=False)


# ---------------------------------------------------------------------- a member: the trainer, in segments


def pbt_fn(config: Dict[str, Any]) -> None:
    """The Tune trainable of one PBT member (see the module's docstring): the plain trial's
    trainer (`hpo_kd.train.student_trainer`), run `interval` epochs at a time."""
    started = time.time()
    from ray import tune

    from ..worker import clean, curve_row, final_scalars, import_training, run_config

    import_s = import_training()
    from ..train import student_trainer

    trainer = student_trainer(run_config(config))
    member, epochs = trainer.members[0], trainer.c.epochs
    interval = interval_of(config["spec"]["search"], epochs)
    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            with open(os.path.join(d, "state.pt"), "rb") as f:
                start = load_state(trainer, load_bytes(f.read()), config.get("tau"))

    def on_epoch(epoch: int) -> None:
        if epoch >= epochs or not trainer.active:
            return  # the final report comes after
        metrics = dict(curve_row(member.history[-1]), epoch=epoch, final=False)
        if epoch % interval == 0:  # a perturbation epoch: what an exploit copies
            d = tempfile.mkdtemp(prefix="hpo_kd-pbt-")
            try:
                with open(os.path.join(d, "state.pt"), "wb") as f:
                    f.write(save_bytes(trainer.state(epoch)))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            finally:
                shutil.rmtree(d, ignore_errors=True)
        else:
            tune.report(metrics)

    trainer.run(start, epochs, on_epoch)
    final = final_scalars(trainer.finish()[0])
    final["seconds"] = sum(r.get("epoch_seconds", 0) for r in member.history)  # the epochs, not the set-up
    out = {k: clean(v) for k, v in final.items()}
    out.update(
        final=True,
        epoch=len(member.history),
        started_at=started,
        pid=os.getpid(),
        import_s=import_s,
        curve=[curve_row(r) for r in member.history],
        node="",
        gpu_ids="[]",
    )
    if out.get("val_acc") != out.get("val_acc"):  # diverged: PBT needs its metric in every report
        out["val_acc"] = -1.0
    tune.report(out)


# ---------------------------------------------------------------------- the driver side


def scheduler(search: Dict[str, Any], epochs: int):
    """Tune's PopulationBasedTraining for one search."""
    from ray.tune.schedulers import PopulationBasedTraining

    lo, hi = search["low"], search["high"]
    rng = random.Random(search["seed"] + 7)

    def resample():
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    def clamped(config):
        config["tau"] = clamp(config["tau"], search)
        return config

    return PopulationBasedTraining(
        time_attr=TIME_ATTR,
        metric="val_acc",
        mode="max",
        perturbation_interval=interval_of(search, epochs),
        hyperparam_mutations={"tau": resample},
        quantile_fraction=search["quantile"],
        resample_probability=search["resample_probability"],
        perturbation_factors=FACTORS,
        custom_explore_fn=clamped,
        synch=True,
    )


def run_search(t, spec: Dict[str, Any], resources, slots: int, store, study, progress, tune_env, quiet) -> None:
    """Run PBT search `t` (one setting and seed) in a Tuner of its own; its members' rows go to
    the store (a partial earlier run's rows are replaced)."""
    from ray import tune

    from .units import planned_epochs

    epochs = planned_epochs(spec)
    taus = initial_taus(t.search, t.seed)
    storage = tempfile.mkdtemp(prefix="hpo_kd-pbt-tune-")
    import ray.tune.schedulers.pbt as tune_pbt

    tune_random = tune_pbt.random  # PBT's module-level `random`: a seeded generator of its own
    tune_pbt.random = random.Random(t.search["seed"] * 100003 + t.seed)
    try:
        callback = _MemberCallback(store, study, progress, spec)
        tuner = tune.Tuner(
            tune.with_resources(pbt_fn, resources),
            param_space={"spec": spec, "tau": tune.grid_search(taus)},
            # No max_concurrent_trials: the whole population must exist from the start (see above).
            tune_config=tune.TuneConfig(scheduler=scheduler(t.search, epochs), num_samples=1, reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"pbt-{t.id[:12]}-{int(time.time() * 1000)}",
                storage_path=storage,
                verbose=0,
                stop={TIME_ATTR: epochs},
                callbacks=[callback],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            ),
        )
        with tune_env(), quiet("ray.tune.analysis.experiment_analysis"), quiet("ray.tune.schedulers.pbt"):
            tuner.fit()
    finally:
        tune_pbt.random = tune_random
        shutil.rmtree(storage, ignore_errors=True)


def _member_callback_base():
    from .callback import StoreCallback

    return StoreCallback


class _MemberCallback(_member_callback_base()):
    """StoreCallback for one population: a member is known by its place among the Tuner's
    trials (its config, spec included, is the donor's after an exploit), and it is recorded
    once, when it completes."""

    def __init__(self, store, study, progress, spec):
        super().__init__(store, study, progress)
        self.spec = spec
        self.order: List[str] = []

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.order:
            self.order = [x.trial_id for x in trials]
        self.started.setdefault(trial.trial_id, time.time())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        pass  # the curve comes with the final report (and the checkpoint carries it)

    def _record(self, trial, status=None, error=None):
        i = self.order.index(trial.trial_id) if trial.trial_id in self.order else 0
        member = dict(self.spec, kind="pbt", index=i, trial_id=f"{self.spec['unit_id']}-{i}")
        trial.config["spec"] = member
        return super()._record(trial, status, error)
