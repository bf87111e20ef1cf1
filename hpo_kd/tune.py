"""Run a study's trials through Ray Tune on shared workers, writing each finished trial to the store.

Teachers (one Tune trial per distinct teacher key, cached under the study's folder so every
worker reads them) and every fixed-config trial (grid temperatures, MKD, DTS, CTKD, no-KD) run as
one Tune grid search, then one `OptunaSearch` (seeded TPE, optional ASHA) per setting and seed.
Finished trials are skipped on a re-run; an interrupted Optuna search continues from its
finished trials (they are handed to the sampler as evaluated points).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import traceback
import warnings
from typing import Any, Callable, Dict, List, Optional

from . import provenance
from .errors import UserError
from .store import Store
from .study import Study, Trial

_SCALARS = (
    "status", "error", "val_acc", "test_acc", "best_val_acc", "test_at_best_val", "best_epoch",
    "tau_t", "tau_s", "epochs_run", "seconds", "device", "teacher_val_acc", "teacher_test_acc",
)
_CURVE_KEYS = ("epoch", "train_loss", "train_kd", "train_ce", "val_acc", "test_acc", "tau_t",
               "tau_s", "lr", "epoch_seconds", "samples_per_s", "meta_loss", "lambda")


# ---------------------------------------------------------------------- inside a Ray worker


def trial_fn(config: Dict[str, Any]) -> None:
    """The Ray Tune trainable: one teacher or one student trial, reported per epoch."""
    started = time.time()
    from ray import tune

    from .train import run_trial, train_teacher

    spec = config["spec"]
    cfg = _trial_config(config)
    cfg.update(cache_dir=spec["cache_dir"], device=spec["device"], threads=spec["threads"])
    node = _node_id()
    try:
        if spec["kind"] == "teacher":
            cfg.pop("method", None)
            info = train_teacher(cfg)
            # Cost: the teacher's own training (whichever trial happened to train it).
            final = {
                "status": "ok", "val_acc": info["val_acc"], "test_acc": info["test_acc"],
                "best_val_acc": info["val_acc"], "test_at_best_val": info["test_acc"],
                "epochs_run": info["epochs_run"], "seconds": info["seconds"],
            }
        else:
            def per_epoch(row):
                tune.report({k: _clean(row[k]) for k in _CURVE_KEYS if k in row} | {"final": False})

            result = run_trial(cfg, report=per_epoch)
            final = {k: result.get(k) for k in _SCALARS}
            if result["status"] == "ok":
                final["tau_t"], final["tau_s"] = result["tau_t"], result["tau_s"]
            if final["epochs_run"]:
                final["epoch"] = final["epochs_run"]
    except Exception as e:  # recorded as `failed`; the other trials go on
        msg = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        final = {"status": "failed", "error": msg, "trace": traceback.format_exc()[-2000:]}
    final.update(final=True, node=node, pid=os.getpid(), started_at=started, gpu_ids=json.dumps([str(g) for g in _gpu_ids()]))
    tune.report({k: _clean(v) for k, v in final.items()})


def _trial_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The trial's TrialConfig fields: the planned ones plus the temperatures a searcher sampled
    (`tau` for tau_t = tau_s, or `tau_t` and `tau_s`)."""
    cfg = dict(config["spec"]["config"])
    if "tau" in config:
        cfg["tau_t"] = cfg["tau_s"] = float(config["tau"])
    for k in ("tau_t", "tau_s"):
        if k in config:
            cfg[k] = float(config[k])
    return cfg


def _clean(v):
    if v is None:
        return float("nan")
    return v


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:
        return ""


def _gpu_ids():
    try:
        import ray

        return ray.get_gpu_ids()
    except Exception:
        return []


# ---------------------------------------------------------------------- on the driver


def _nan_to_none(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


class Progress:
    def __init__(self, total: int, concurrency: int):
        # No stream is held: Ray Tune pickles its callbacks with the experiment state.
        self.total, self.done, self.concurrency = total, 0, max(concurrency, 1)
        self.start = time.time()
        self.trial_seconds = 0.0

    def finished(self, row: Dict[str, Any]) -> None:
        self.done += 1
        self.trial_seconds += row.get("seconds") or 0.0
        elapsed = time.time() - self.start
        left = self.total - self.done
        eta = elapsed / self.done * left if self.done else 0.0
        taus = ""
        if row["method"] in ("grid", "optuna", "transfer"):
            taus = f" tau_t={row['tau_t_config']:.3g} tau_s={row['tau_s_config']:.3g}"
        elif row["method"].split(":")[0] in ("mkd", "dts", "ctkd") and row.get("tau_t") is not None:
            taus = f" -> tau_t={row['tau_t']:.3g} tau_s={row['tau_s']:.3g}"
        acc = ""
        if row.get("val_acc") is not None:
            acc = f" val={row['val_acc']:.4f} test={row['test_acc']:.4f}"
        err = f" ({row['error'][:200]})" if row.get("error") and row["status"] != "ok" else ""
        print(
            f"[{self.done}/{self.total}] {row['setting_label']} {row['method']} seed={row['seed']}"
            f"{taus}: {row['status']}{acc} {row.get('seconds') or 0:.1f}s{err}  ETA {eta:.0f}s",
            file=sys.stderr, flush=True,
        )


def _make_callback(store: Store, study: Study, progress: Progress):
    from ray import tune

    class StoreCallback(tune.Callback):
        """Writes every finished trial to the store as soon as it finishes (driver side)."""

        def __init__(self):
            self.curves: Dict[str, List[Dict[str, Any]]] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if not result.get("final", False):
                row = {k: result[k] for k in _CURVE_KEYS if k in result}
                self.curves.setdefault(trial.trial_id, []).append(row)

        def _record(self, trial, status=None, error=None):
            spec = trial.config["spec"]
            last = dict(trial.last_result or {})
            curve = self.curves.pop(trial.trial_id, [])
            from_curve = status is None and not last.get("final") and curve
            if status is None:
                # No final report: a scheduler (ASHA) ended the trial. It is `stopped` early unless
                # it had already run every planned epoch.
                status = last.get("status") if last.get("final") else (
                    "ok" if curve and len(curve) >= _planned_epochs(spec) else "stopped")
            row = _row(study, spec, trial.config, last, status, error or _nan_to_none(last.get("error")))
            # The order in which a search proposed its trials (Tune's experiment tag starts with a
            # counter from 1), after the trials an interrupted search had already finished.
            row["trial_index"] = spec.get("index_offset", 0) + _tune_number(trial.experiment_tag)
            if from_curve:
                best = max(curve, key=lambda r: r["val_acc"])
                row.update(epochs_run=len(curve), val_acc=curve[-1]["val_acc"], test_acc=curve[-1]["test_acc"],
                           best_val_acc=best["val_acc"], test_at_best_val=best["test_acc"],
                           best_epoch=best["epoch"], tau_t=curve[-1].get("tau_t"), tau_s=curve[-1].get("tau_s"),
                           seconds=sum(r.get("epoch_seconds", 0) for r in curve))
            store.add(row, curve)
            progress.finished(row)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._record(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._record(trial, status="failed", error=str(getattr(trial, "error_msg", None) or "trial process failed"))

    return StoreCallback()


def _row(study: Study, spec, config, last, status, error) -> Dict[str, Any]:
    c = _trial_config(config)
    trial_id = spec["trial_id"]
    if spec["kind"] == "search":
        trial_id = f"{spec['unit_id']}-{_hash([c['tau_t'], c['tau_s']])}"
    s = spec["setting"]
    row = {
        "trial_id": trial_id, "unit_id": spec["unit_id"], "study": study.name,
        "setting": s["id"], "setting_label": s["label"], "dataset": s["dataset"], "augment": s["augment"],
        "fraction": s["fraction"], "teacher": s["teacher"], "student": s["student"] if spec["kind"] != "teacher" else None,
        "method": spec["method"], "seed": spec["seed"],
        "tau_t_config": c.get("tau_t"), "tau_s_config": c.get("tau_s"),
        "options": spec.get("search") or c.get("method_options", {}), "status": status, "error": error,
        "epochs": c.get("epochs"), "node": _nan_to_none(last.get("node")),
        "started_at": _nan_to_none(last.get("started_at")), "gpu_ids": _nan_to_none(last.get("gpu_ids")),
    }
    for k in ("val_acc", "test_acc", "best_val_acc", "test_at_best_val", "best_epoch", "tau_t", "tau_s",
              "epochs_run", "seconds", "device"):
        row[k] = _nan_to_none(last.get(k))
    if status in ("failed",):
        for k in ("val_acc", "test_acc", "best_val_acc", "test_at_best_val"):
            row[k] = None
    return row


def _tune_number(experiment_tag: str) -> int:
    try:
        return int(str(experiment_tag).split("_", 1)[0]) - 1
    except ValueError:
        return 0


def _planned_epochs(spec) -> int:
    from .train import DATASET_DEFAULTS

    c = spec["config"]
    return c.get("epochs") or DATASET_DEFAULTS.get(c["dataset"], DATASET_DEFAULTS["imagefolder"])["epochs"]


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def _spec(t: Trial, cache_dir: str, device: str, threads: int) -> Dict[str, Any]:
    s = t.setting
    return {
        "kind": t.kind, "method": t.method, "seed": t.seed, "config": t.config, "trial_id": t.id,
        "search": t.search,
        "unit_id": t.id, "cache_dir": cache_dir, "device": device, "threads": threads,
        "setting": {"id": s.id, "label": s.label, "dataset": s.dataset, "augment": s.augment,
                    "fraction": s.fraction, "teacher": s.teacher, "student": s.student},
    }


class Runner:
    """Runs a study on a Ray cluster: embedded local Ray by default, or one given by address."""

    def __init__(self, study: Study, runs_dir: str = "runs", address: Optional[str] = None,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
        self.study = study
        self.folder = os.path.abspath(os.path.join(runs_dir, study.name))
        self.store = Store(self.folder, create=False)  # reading only, until something runs
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS")
        self.log = log
        self._started_ray = False

    def _save_study_copy(self):
        """A copy of the study file beside its results: `hpo-kd transfer` re-creates trials from it."""
        os.makedirs(self.folder, exist_ok=True)
        with open(self.study.path, "rb") as f:
            text = f.read()
        tmp = os.path.join(self.folder, "study.toml.tmp")
        with open(tmp, "wb") as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.folder, "study.toml"))

    # ------------------------------------------------------------------ Ray lifecycle
    def _init_ray(self):
        import ray

        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Ctrl-C stops the whole study at once (KeyboardInterrupt), not just the current Tuner;
        # every finished trial is already in the store.
        os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
        env = {"RAY_CHDIR_TO_TRIAL_DIR": "0", "PYTHONWARNINGS": "ignore"}
        if ray.is_initialized():
            return
        if self.address:
            try:
                ray.init(address=self.address, runtime_env={"env_vars": env}, log_to_driver=False,
                         logging_level="WARNING")
            except ConnectionError as e:
                raise UserError(
                    f"could not connect to the Ray cluster at {self.address!r} ({e}). If the cluster "
                    "uses token authentication (Ray's default), set RAY_AUTH_MODE=token and the "
                    "cluster's token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token) first"
                ) from None
        else:
            # address="local": always a new embedded Ray, never a cluster that happens to run here.
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                     runtime_env={"env_vars": env}, log_to_driver=False, logging_level="WARNING")
        self._started_ray = True

    def _shutdown(self):
        import ray

        if self._started_ray:
            ray.shutdown()

    def _resources(self):
        import ray

        r = dict(self.study.resources)
        total = ray.cluster_resources()
        gpus = r.get("gpus_per_trial", 0)
        cpus = r["cpus_per_trial"]
        # A trial asking for more than the cluster has would wait forever: say so instead.
        if cpus > total.get("CPU", 0):
            raise UserError(f"{self.study.path}: resources.cpus_per_trial = {cpus} but the Ray cluster "
                            f"has {total.get('CPU', 0):g} CPU(s)")
        if gpus > max(total.get("GPU", 0), 1):
            raise UserError(f"{self.study.path}: resources.gpus_per_trial = {gpus} but the Ray cluster "
                            f"has {total.get('GPU', 0):g} GPU(s)")
        if gpus > 0 and total.get("GPU", 0) < min(gpus, 1):
            warnings.warn(
                f"resources.gpus_per_trial = {gpus} but the Ray cluster has no GPU; running on CPU",
                stacklevel=2,
            )
            self.log(f"warning: resources.gpus_per_trial = {gpus} but the Ray cluster has no GPU; running on CPU")
            gpus = 0
        slots = int(total.get("CPU", 1) // cpus) if cpus else 1
        if gpus > 0:
            slots = min(slots, int(total.get("GPU", 0) / gpus + 1e-9))
        slots = max(1, min(slots, r.get("max_concurrent", slots)))
        device = "auto" if gpus > 0 else "cpu"
        return {"cpu": cpus, "gpu": gpus}, slots, device, max(1, int(cpus))

    # ------------------------------------------------------------------ running
    def pending(self, plan: Optional[List[Trial]] = None) -> List[Trial]:
        done = self.store.finished_ids()
        out = []
        for t in self.study.plan() if plan is None else plan:
            if t.kind == "search":
                if len(self.store.unit_rows(t.id)) < t.budget:
                    out.append(t)
            elif t.id not in done:
                out.append(t)
        return out

    def remaining(self, todo: List[Trial]) -> int:
        """How many Ray Tune trials the pending units still need (a search may be half done)."""
        return sum(t.budget - (len(self.store.unit_rows(t.id)) if t.kind == "search" else 0) for t in todo)

    def run(self, plan: Optional[List[Trial]] = None) -> Dict[str, int]:
        """Run every trial of the study (or of `plan`) that is not finished in the store."""
        plan = self.study.plan() if plan is None else plan
        todo = self.pending(plan)
        n_trials = self.remaining(todo)
        planned = sum(t.budget for t in plan)
        self.log(f"study {self.study.name}: {planned} trials planned, {planned - n_trials} already finished, "
                 f"{n_trials} to run; results in {self.folder}")
        if not todo:
            return {"ran": 0, "planned": planned}
        self._save_study_copy()
        self._init_ray()
        try:
            resources, slots, device, threads = self._resources()
            provenance.record(self.folder, threads)
            progress = Progress(n_trials, slots)
            cache_dir = self.folder  # teachers go to <study folder>/teachers/
            teachers = [t for t in todo if t.kind == "teacher"]
            fixed = [t for t in todo if t.kind == "trial"]
            searches = [t for t in todo if t.kind == "search"]
            specs = lambda ts: [_spec(t, cache_dir, device, threads) for t in ts]  # noqa: E731
            if teachers or fixed:
                # One Tuner for both: teachers come first in the grid, and a student that starts
                # before its teacher is done waits on the teacher's file lock (never trains it twice).
                self._grid(specs(teachers + fixed), resources, slots, progress, "trials")
            for t in searches:
                self._optuna(t, _spec(t, cache_dir, device, threads), resources, slots, progress)
        finally:
            self._shutdown()
        return {"ran": progress.done, "planned": planned}

    def _tuner(self, param_space, resources, tune_config, progress, name):
        from ray import tune

        return tune.Tuner(
            tune.with_resources(trial_fn, resources),
            param_space=param_space,
            tune_config=tune_config,
            run_config=tune.RunConfig(
                name=f"{name}-{int(time.time() * 1000)}",
                storage_path=os.path.join(self.folder, "ray"),
                verbose=0,
                callbacks=[_make_callback(self.store, self.study, progress)],
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            ),
        )

    def _grid(self, specs, resources, slots, progress, name):
        from ray import tune

        cfg = tune.TuneConfig(max_concurrent_trials=slots, reuse_actors=True)
        self._tuner({"spec": tune.grid_search(specs)}, resources, cfg, progress, name).fit()

    def _optuna(self, t: Trial, spec, resources, slots, progress):
        import optuna
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        o = t.search
        prev = self.store.unit_rows(t.id)
        if o["separate"]:
            space = {"tau_t": tune.loguniform(o["low"], o["high"]), "tau_s": tune.loguniform(o["low"], o["high"])}
            points = [{"tau_t": a, "tau_s": b} for a, b in zip(prev["tau_t_config"], prev["tau_s_config"])]
        else:
            space = {"tau": tune.loguniform(o["low"], o["high"])}
            points = [{"tau": a} for a in prev["tau_t_config"]]
        rewards = [v if v == v else 0.0 for v in prev["val_acc"].astype(float)] if len(prev) else None
        searcher = OptunaSearch(
            metric="val_acc", mode="max",
            sampler=optuna.samplers.TPESampler(seed=o["seed"] * 100003 + t.seed,
                                               n_startup_trials=o["startup_trials"]),
            points_to_evaluate=points or None, evaluated_rewards=rewards,
        )
        # Suggest a new batch only when the whole batch has finished, so that what TPE proposes
        # depends on the results and not on which trial happened to finish first.
        searcher = ConcurrencyLimiter(searcher, max_concurrent=slots, batch=True)
        spec = dict(spec, index_offset=len(prev))
        scheduler = None
        if o["asha"]:
            scheduler = ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max",
                                      # +1: reaching max_t stops a trial before its final report
                                      max_t=_planned_epochs(spec) + 1,
                                      grace_period=o["grace_period"], reduction_factor=o["reduction_factor"])
        cfg = tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=t.budget - len(prev),
                              reuse_actors=True)  # the limiter caps concurrency
        self._tuner({"spec": spec, **space}, resources, cfg, progress, "optuna").fit()
