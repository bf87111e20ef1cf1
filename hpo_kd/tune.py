"""Run a study's trials through Ray Tune on shared workers, writing each finished trial to the store.

One `Tuner` runs every pending trial of a run: the teachers (one Tune trial per distinct teacher
key, cached under the study's folder so every worker reads them), every fixed-config trial (grid
temperatures, MKD, DTS, CTKD, no-KD) and every Optuna search (an `OptunaSearch` with a seeded TPE
sampler per setting and seed, optionally with Ray Tune's ASHA). A `StudySearcher` (a Tune
`Searcher`) hands Tune the next trial of whichever unit can use a free slot, and a
`PerSearchScheduler` gives every ASHA search an `ASHAScheduler` of its own. So a run pays one
Tuner start-up and one actor start-up per slot (every trial reuses the actors), and a search that
waits for its batch leaves its slots to other trials instead of idling.

An Optuna search proposes in whole batches of `slots` trials and sees a batch's results only when
all of it has finished, in the order it proposed them: what it proposes depends on results, never
on timing or on the other trials sharing the slots.

Finished trials are skipped on a re-run; an interrupted Optuna search continues from its
finished trials (they are handed to the sampler as evaluated points).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

from . import provenance
from .errors import UserError
from .store import RESULT_COLUMNS, Store
from .study import Study, Trial
from .worker import SCALARS as _SCALARS  # noqa: F401  (kept for importers)
from .worker import clean as _clean  # noqa: F401
from .worker import trial_config as _trial_config
from .worker import trial_fn  # noqa: F401  (the Tune trainable lives in hpo_kd.worker)
from .files import atomic_write, digest

# Ray Tune's own files: nothing per trial (the store keeps every result and curve), and no
# periodic experiment snapshot (a run resumes from the store, never from Tune's state).
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no result.json / progress.csv / params.json per trial
    "TUNE_GLOBAL_CHECKPOINT_S": str(10**9),  # experiment state written once, at the end
    "TUNE_RESULT_BUFFER_LENGTH": "1",
}
# What the workers need in their environment (the embedded Ray passes the driver's environment
# to its workers; a cluster gets it as a runtime_env).
WORKER_ENV = {"RAY_CHDIR_TO_TRIAL_DIR": "0", "PYTHONWARNINGS": "ignore"}


@contextlib.contextmanager
def _environ(values: Dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------- on the driver


def _nan_to_none(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _learned(method: str) -> bool:
    from . import methods

    return methods.info(method)["kind"] == "learned"


class Progress:
    def __init__(self, total: int, concurrency: int):
        # No stream is held: Ray Tune pickles its callbacks with the experiment state.
        self.total, self.done, self.concurrency = total, 0, max(concurrency, 1)
        self.start = time.time()
        self.trial_seconds = 0.0
        self.timings: List[Dict[str, Any]] = []  # one per finished trial, for `Runner.timing`
        self.teacher_val: Dict[str, List[float]] = {}  # setting -> its teachers' val accuracies
        self.warned: set = set()

    def know_teachers(self, rows) -> None:
        """Teachers finished by an earlier run (a resumed study does not train them again)."""
        for r in rows:
            if r.get("method") == "teacher" and r.get("status") == "ok" and r.get("val_acc") == r.get("val_acc") \
                    and r.get("val_acc") is not None:
                self.teacher_val.setdefault(r["setting"], []).append(r["val_acc"])

    def weak_teacher(self, row: Dict[str, Any]) -> Optional[str]:
        """A warning when a no-KD student beats its setting's teachers on val (once per setting)."""
        if row["method"] != "nokd" or row.get("val_acc") is None or row["setting"] in self.warned:
            return None
        vals = self.teacher_val.get(row["setting"])
        if not vals or row["val_acc"] <= sum(vals) / len(vals):
            return None
        self.warned.add(row["setting"])
        return (f"warning: on {row['setting_label']} the teacher's val accuracy ({100 * sum(vals) / len(vals):.2f} %, "
                f"mean of {len(vals)}) is below the no-KD student's ({100 * row['val_acc']:.2f} %, seed "
                f"{row['seed']}): distillation from this teacher is not expected to help")

    def finished(self, row: Dict[str, Any]) -> None:
        self.know_teachers([row])
        self.done += 1
        self.trial_seconds += row.get("seconds") or 0.0
        elapsed = time.time() - self.start
        left = self.total - self.done
        eta = elapsed / self.done * left if self.done else 0.0
        taus = ""
        if row["method"] in ("grid", "optuna", "transfer"):
            taus = f" tau_t={row['tau_t_config']:.3g} tau_s={row['tau_s_config']:.3g}"
        elif _learned(row["method"]) and row.get("tau_t") is not None:
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
        weak = self.weak_teacher(row)
        if weak:
            print(weak, file=sys.stderr, flush=True)


# Ctrl-C during a run, remembered. The handler raises KeyboardInterrupt as Python's own does, and
# also sets this flag, so that if the exception is swallowed inside the driver's libraries the
# driver still stops at the next finished trial, or when the Tuner returns. (Once in a full test
# run a Ctrl-C did not stop the study: it finished every trial and exited 0. The cause was not
# found; a swallowed KeyboardInterrupt fits what was seen.) Module-level: Tune pickles its callbacks.
_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def _ctrl_c():
    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread only
        yield
        return
    _INTERRUPTED.clear()
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(signum, frame):
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _stop_if_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _make_callback(store: Store, study: Study, progress: Progress):
    from ray import tune

    class StoreCallback(tune.Callback):
        """Writes every finished trial to the store as soon as it finishes (driver side)."""

        def __init__(self):
            self.curves: Dict[str, List[Dict[str, Any]]] = {}  # per-epoch reports (ASHA searches)
            self.started: Dict[str, float] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started[trial.trial_id] = time.time()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if not result.get("final", False):
                row = {k: result[k] for k in str(result.get("curve_keys", "")).split(",") if k in result}
                self.curves.setdefault(trial.trial_id, []).append(row)

        def _record(self, trial, status=None, error=None):
            spec = trial.config["spec"]
            if spec["kind"] == "group":
                return self._record_group(trial, spec, status, error)
            last = dict(trial.last_result or {})
            curve = self.curves.pop(trial.trial_id, [])
            if last.get("final") and isinstance(last.get("curve"), list):
                curve = last["curve"]  # the whole curve came with the final report
            from_curve = status is None and not last.get("final") and curve
            if status is None:
                # No final report: a scheduler (ASHA) ended the trial. It is `stopped` early unless
                # it had already run every planned epoch.
                status = last.get("status") if last.get("final") else (
                    "ok" if curve and len(curve) >= _planned_epochs(spec) else "stopped")
            row = _row(study, spec, trial.config, last, status, error or _nan_to_none(last.get("error")))
            # The order in which a search proposed its trials, after the trials an interrupted
            # search had already finished (for the other trials: their place in this run).
            row["trial_index"] = spec.get("index", 0)
            if from_curve:
                best = max(curve, key=lambda r: r["val_acc"])
                row.update(epochs_run=len(curve), val_acc=curve[-1]["val_acc"], test_acc=curve[-1]["test_acc"],
                           best_val_acc=best["val_acc"], test_at_best_val=best["test_acc"],
                           best_epoch=best["epoch"], tau_t=curve[-1].get("tau_t"), tau_s=curve[-1].get("tau_s"),
                           seconds=sum(r.get("epoch_seconds", 0) for r in curve))
            store.add(row, curve)
            progress.timings.append({
                "start": self.started.pop(trial.trial_id, None), "end": time.time(),
                "pid": _nan_to_none(last.get("pid")), "entered": _nan_to_none(last.get("started_at")),
                "import_s": _nan_to_none(last.get("import_s")), "run_s": _nan_to_none(last.get("run_s")),
                "seconds": row.get("seconds"), "kind": spec["kind"],
            })
            progress.finished(row)
            _stop_if_interrupted()  # the row above is stored

        def _record_group(self, trial, spec, status=None, error=None):
            """A row per member of a group trial (all `failed` if the trial's process failed)."""
            last = dict(trial.last_result or {})
            finals = last.get("members") if last.get("final") else None
            if not isinstance(finals, list) or len(finals) != len(spec["members"]):
                finals = [{"status": "failed", "error": error or _nan_to_none(last.get("error"))
                           or "group trial ended without a result"} for _ in spec["members"]]
            started = self.started.pop(trial.trial_id, None)
            for member, final in zip(spec["members"], finals):
                final = dict(final, node=last.get("node"), started_at=last.get("started_at"),
                             gpu_ids=last.get("gpu_ids"))
                row = _row(study, member, {"spec": member}, final, status or final.get("status"),
                           error or _nan_to_none(final.get("error")))
                row["trial_index"] = member.get("index", 0)
                curve = final.get("curve") if isinstance(final.get("curve"), list) else []
                store.add(row, curve)
                progress.finished(row)
            progress.timings.append({
                "start": started, "end": time.time(),
                "pid": _nan_to_none(last.get("pid")), "entered": _nan_to_none(last.get("started_at")),
                "import_s": _nan_to_none(last.get("import_s")), "run_s": _nan_to_none(last.get("run_s")),
                "seconds": sum(_nan_to_none(f.get("seconds")) or 0.0 for f in finals), "kind": "group",
            })
            _stop_if_interrupted()  # the rows above are stored

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._record(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._record(trial, status="failed", error=str(getattr(trial, "error_msg", None) or "trial process failed"))

    return StoreCallback()


def _row(study: Study, spec, config, last, status, error) -> Dict[str, Any]:
    c = _trial_config(config)
    trial_id = spec["trial_id"]
    if spec["kind"] == "search":
        trial_id = f"{spec['unit_id']}-{digest([c['tau_t'], c['tau_s']])}"
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
    for k in RESULT_COLUMNS:
        if k not in ("status", "error"):
            row[k] = _nan_to_none(last.get(k))
    if status in ("failed",):
        for k in ("val_acc", "test_acc", "best_val_acc", "test_at_best_val"):
            row[k] = None
    return row


def _planned_epochs(spec) -> int:
    from . import data as data_mod

    c = spec["config"]
    return c.get("epochs") or data_mod.train_defaults(c["dataset"])["epochs"]


def _spec(t: Trial, cache_dir: str, device: str, threads: int) -> Dict[str, Any]:
    s = t.setting
    return {
        "kind": t.kind, "method": t.method, "seed": t.seed, "config": t.config, "trial_id": t.id,
        "search": t.search,
        "unit_id": t.id, "cache_dir": cache_dir, "device": device, "threads": threads,
        "setting": {"id": s.id, "label": s.label, "dataset": s.dataset, "augment": s.augment,
                    "fraction": s.fraction, "teacher": s.teacher, "student": s.student},
    }


def _groupable(spec: Dict[str, Any]) -> bool:
    """Whether a fixed-config student may train in a group (hpo_kd.train.run_trials): its method
    leaves the backward pass to the trainer, its student's architecture allows it, fp32."""
    from . import methods
    from .models.grouped import trains_in_groups

    c = spec["config"]
    if spec["kind"] != "trial" or c.get("precision", "fp32") != "fp32":
        return False
    from . import data as data_mod

    student = c.get("student") or data_mod.train_defaults(c["dataset"])["student"]
    return methods.METHODS.get(c["method"]).trains_in_group() and trains_in_groups(student)


def _grouped(specs: List[Dict[str, Any]], per_trial: int) -> List[Dict[str, Any]]:
    """The fixed-config units of a run, with the students that see the same batches (same
    setting, seed and recipe; other temperature methods) joined into group units of at most
    `per_trial` members, each one Ray Tune trial. A group stands where its first member stood."""
    from .train import group_key

    if per_trial <= 1:
        return specs
    buckets: Dict[str, List[Dict[str, Any]]] = {}
    for spec in specs:
        if _groupable(spec):
            buckets.setdefault(group_key(spec["config"]), []).append(spec)
    chunks = {}
    for members in buckets.values():
        for i in range(0, len(members), per_trial):
            chunk = members[i:i + per_trial]
            if len(chunk) > 1:
                chunks[chunk[0]["unit_id"]] = chunk
    in_chunk = {m["unit_id"] for chunk in chunks.values() for m in chunk}
    out = []
    for spec in specs:
        if spec["unit_id"] in chunks:
            members = chunks[spec["unit_id"]]
            out.append(dict(members[0], kind="group", unit_id=f"group-{members[0]['unit_id']}", members=members))
        elif spec["unit_id"] not in in_chunk:
            out.append(spec)
    return out


def _teacher_key(study: Study, t: Trial) -> Optional[str]:
    """The key of the teacher trial a unit waits for (as `Study.teachers()` builds it), or None."""
    if t.kind == "teacher":
        return json.dumps(t.config, sort_keys=True)
    if t.config.get("method") == "nokd":
        return None
    cfg = study.base_config(t.setting, t.seed)
    cfg.pop("student", None)
    cfg.update(method="nokd", seed=cfg.get("teacher_seed", 0))
    return json.dumps(cfg, sort_keys=True)


class _Search:
    """One Optuna search inside the study's Tuner: its searcher, budget and current batch."""

    def __init__(self, spec, searcher, budget: int, offset: int, batch: int):
        self.spec, self.searcher = spec, searcher
        self.unit_id = spec["unit_id"]
        self.left, self.offset, self.batch_size = budget, offset, batch
        self.asked = 0
        self.queue: List[tuple] = []  # (searcher trial id, index, config) proposed, not yet handed out
        self.batch: Dict[str, Optional[tuple]] = {}  # searcher trial id -> (result, error) when done


def _make_searcher(fixed: List[Dict[str, Any]], searches: List[_Search], waits_for: Dict[str, str],
                   slots: int):
    from ray.tune.search import Searcher

    class StudySearcher(Searcher):
        """Every pending trial of a run, as one Tune search: teachers first, then whichever
        search can propose (a search proposes `slots` trials at a time and sees their results
        only when the whole batch has finished), then the fixed-config trials. A unit whose
        teacher is still training waits while any other unit has a trial to run."""

        def __init__(self):
            super().__init__(metric=None, mode=None)
            self._fixed = list(fixed)
            self._given = [False] * len(self._fixed)
            self._searches = searches
            self._waits_for = dict(waits_for)  # unit id -> teacher unit id (pending in this run)
            self._done_units: set = set()
            self._owner: Dict[str, tuple] = {}  # Tune trial id -> ("fixed", unit id) | ("search", _Search, id)

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return True

        def _ready(self, unit_id: str) -> bool:
            t = self._waits_for.get(unit_id)
            return t is None or t in self._done_units

        def _from_search(self, s: _Search, trial_id: str) -> Optional[Dict[str, Any]]:
            if not s.queue:
                if s.batch or s.left <= 0:
                    return None  # the batch is still running, or the search is done
                for _ in range(min(s.batch_size, s.left)):
                    sid = f"{s.unit_id}-{s.asked}"
                    cfg = s.searcher.suggest(sid)
                    s.queue.append((sid, s.offset + s.asked, cfg))
                    s.batch[sid] = None
                    s.asked += 1
                    s.left -= 1
            sid, index, cfg = s.queue.pop(0)
            self._owner[trial_id] = ("search", s, sid)
            return {"spec": dict(s.spec, index=index), **cfg}

        def _from_fixed(self, trial_id: str, ready: bool, teachers: bool) -> Optional[Dict[str, Any]]:
            for i, spec in enumerate(self._fixed):
                if self._given[i] or (spec["kind"] == "teacher") != teachers:
                    continue
                if self._ready(spec["unit_id"]) == ready:
                    self._given[i] = True
                    self._owner[trial_id] = ("fixed", spec["unit_id"])
                    return {"spec": spec}
            return None

        def suggest(self, trial_id: str) -> Optional[Dict[str, Any]]:
            cfg = self._from_fixed(trial_id, True, teachers=True)
            for ready in (True, False):
                for s in self._searches:
                    if cfg is None and self._ready(s.unit_id) == ready:
                        cfg = self._from_search(s, trial_id)
                if cfg is None:
                    cfg = self._from_fixed(trial_id, ready, teachers=False)
                if cfg is not None:
                    return cfg
            if all(self._given) and all(s.left <= 0 and not s.queue for s in self._searches):
                return Searcher.FINISHED
            return None

        def on_trial_result(self, trial_id: str, result: Dict) -> None:
            owner = self._owner.get(trial_id)
            if owner and owner[0] == "search" and owner[1].spec.get("per_epoch") and "val_acc" in result:
                owner[1].searcher.on_trial_result(owner[2], result)

        def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
            owner = self._owner.pop(trial_id, None)
            if owner is None:
                return
            if owner[0] == "fixed":
                self._done_units.add(owner[1])
                return
            _, s, sid = owner
            s.batch[sid] = (result, error)
            if all(v is not None for v in s.batch.values()):
                # The whole batch has finished: the searcher learns its results in the order it
                # proposed them, whichever finished first.
                for k, (res, err) in s.batch.items():
                    s.searcher.on_trial_complete(k, result=res, error=err)
                s.batch = {}

        def save(self, checkpoint_path: str) -> None:
            pass  # a run resumes from the store, not from Tune's experiment state

        def restore(self, checkpoint_path: str) -> None:
            pass

    return StudySearcher()


def _make_scheduler(by_unit: Dict[str, Any]):
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class PerSearchScheduler(FIFOScheduler):
        """FIFO for every trial, except that each ASHA search's trials go to its own
        `ASHAScheduler` (its rungs compare that search's trials only)."""

        def __init__(self):
            super().__init__()
            self._by_unit = by_unit

        def _of(self, trial):
            return self._by_unit.get(trial.config.get("spec", {}).get("unit_id"))

        def set_search_properties(self, metric, mode, **spec) -> bool:
            return True

        def on_trial_add(self, tune_controller, trial):
            s = self._of(trial)
            if s is not None:
                s.on_trial_add(tune_controller, trial)

        def on_trial_error(self, tune_controller, trial):
            s = self._of(trial)
            if s is not None:
                s.on_trial_error(tune_controller, trial)

        def on_trial_result(self, tune_controller, trial, result):
            s = self._of(trial)
            return s.on_trial_result(tune_controller, trial, result) if s is not None else TrialScheduler.CONTINUE

        def on_trial_complete(self, tune_controller, trial, result):
            s = self._of(trial)
            if s is not None:
                s.on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller, trial):
            s = self._of(trial)
            if s is not None:
                s.on_trial_remove(tune_controller, trial)

        def debug_string(self) -> str:
            return "\n".join(s.debug_string() for s in self._by_unit.values())

    return PerSearchScheduler()


def _import_tune() -> None:
    try:
        import optuna  # noqa: F401
        import ray.tune  # noqa: F401
        import ray.tune.search.optuna  # noqa: F401
    except Exception:  # imported again where needed, which raises in the right place
        pass


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
        self.timing: Dict[str, Any] = {}  # where the last run's time went (see `_timing`)

    def _save_study_copy(self):
        """A copy of the study file beside its results: `hpo-kd transfer` re-creates trials from it."""
        os.makedirs(self.folder, exist_ok=True)
        with open(self.study.path, "rb") as f:
            text = f.read()
        def write(tmp):
            with open(tmp, "wb") as f:
                f.write(text)

        atomic_write(os.path.join(self.folder, "study.toml"), write)

    # ------------------------------------------------------------------ Ray lifecycle
    def _init_ray(self):
        import ray

        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Ctrl-C stops the whole study at once (KeyboardInterrupt), not just the current Tuner;
        # every finished trial is already in the store.
        os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
        if ray.is_initialized():
            return
        if self.address:
            try:
                ray.init(address=self.address, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False,
                         logging_level="WARNING")
            except ConnectionError as e:
                raise UserError(
                    f"could not connect to the Ray cluster at {self.address!r} ({e}). If the cluster "
                    "uses token authentication (Ray's default), set RAY_AUTH_MODE=token and the "
                    "cluster's token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token) first"
                ) from None
        else:
            # address="local": always a new embedded Ray, never a cluster that happens to run here.
            # Its workers inherit the environment its processes start with: no runtime_env, whose
            # set-up would delay the start of every worker.
            with _environ(WORKER_ENV):
                ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                         log_to_driver=False, logging_level="WARNING")
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

    def tune_trials(self, todo: List[Trial]) -> int:
        """How many Ray Tune trials the pending units take: a group of students is one."""
        units = [t for t in todo if t.kind in ("teacher", "trial")]
        specs = [_spec(t, self.folder, "cpu", 1) for t in units]
        searches = sum(t.budget - len(self.store.unit_rows(t.id)) for t in todo if t.kind == "search")
        return len(_grouped(specs, self.study.resources.get("students_per_trial", 1))) + searches

    def remaining(self, todo: List[Trial]) -> int:
        """How many trials (store rows) the pending units still need (a search may be half done);
        `tune_trials` says in how many Ray Tune trials."""
        return sum(t.budget - (len(self.store.unit_rows(t.id)) if t.kind == "search" else 0) for t in todo)

    def run(self, plan: Optional[List[Trial]] = None) -> Dict[str, int]:
        """Run every trial of the study (or of `plan`) that is not finished in the store."""
        t_run = time.time()
        plan = self.study.plan() if plan is None else plan
        todo = self.pending(plan)
        n_trials = self.remaining(todo)
        planned = sum(t.budget for t in plan)
        self.log(f"study {self.study.name}: {planned} trials planned, {planned - n_trials} already finished, "
                 f"{n_trials} to run; results in {self.folder}")
        if not todo:
            return {"ran": 0, "planned": planned}
        self._save_study_copy()
        marks = {"run": t_run}
        # The driver's own imports for the Tuner, while Ray starts its processes.
        preload = threading.Thread(target=_import_tune, daemon=True)
        preload.start()
        self._init_ray()
        preload.join()
        marks["ray_started"] = time.time()
        progress = None
        try:
            resources, slots, device, threads = self._resources()
            provenance.record(self.folder, threads)
            progress = Progress(n_trials, slots)
            progress.know_teachers(self.store.trials().to_dict("records"))
            with _ctrl_c():
                self._tune(todo, n_trials, resources, slots, device, threads, progress, marks)
                _stop_if_interrupted()
        finally:
            marks["tune_ended"] = time.time()
            self._shutdown()
            marks["ray_stopped"] = time.time()
            if progress is not None:
                self.timing = _timing(marks, progress, slots)
        return {"ran": progress.done, "planned": planned}

    def _tune(self, todo: List[Trial], n_trials: int, resources, slots: int, device: str, threads: int,
              progress: Progress, marks: Dict[str, float]) -> None:
        """One Tuner for every pending trial of this run."""
        from ray import tune

        cache_dir = self.folder  # teachers go to <study folder>/teachers/
        units = [t for t in todo if t.kind == "teacher"] + [t for t in todo if t.kind == "trial"]
        fixed = _grouped([dict(_spec(t, cache_dir, device, threads), index=i) for i, t in enumerate(units)],
                         self.study.resources.get("students_per_trial", 1))
        searches, ashas = [], {}
        for t in todo:
            if t.kind == "search":
                s = self._search(t, _spec(t, cache_dir, device, threads), slots)
                searches.append(s)
                if t.search["asha"]:
                    ashas[t.id] = self._asha(t, s.spec)
        # A student waits for its teacher only while the teacher trains in this run.
        teacher_ids = {_teacher_key(self.study, t): t.id for t in todo if t.kind == "teacher"}
        waits_for = {}
        for t in todo:
            key = _teacher_key(self.study, t) if t.kind != "teacher" else None
            if key in teacher_ids:
                waits_for[t.id] = teacher_ids[key]
        for spec in fixed:  # a group waits for its members' teacher (one setting and seed: one teacher)
            for m in spec.get("members", []):
                if m["unit_id"] in waits_for:
                    waits_for[spec["unit_id"]] = waits_for[m["unit_id"]]
        searcher = _make_searcher(fixed, searches, waits_for, slots)
        storage = tempfile.mkdtemp(prefix=f"hpo_kd-{self.study.name}-tune-")
        try:
            with _environ(TUNE_ENV):
                tuner = tune.Tuner(
                    tune.with_resources(trial_fn, resources),
                    param_space={},
                    tune_config=tune.TuneConfig(
                        search_alg=searcher, scheduler=_make_scheduler(ashas) if ashas else None,
                        num_samples=len(fixed) + sum(x.left for x in searches), max_concurrent_trials=slots,
                        reuse_actors=True,
                    ),
                    run_config=tune.RunConfig(
                        name=f"{self.study.name}-{int(time.time() * 1000)}",
                        storage_path=storage,
                        verbose=0,
                        callbacks=[_make_callback(self.store, self.study, progress)],
                        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                    ),
                )
                marks["tune_started"] = time.time()
                # Tune's result grid looks for the per-trial files it no longer writes: quiet.
                with _quiet("ray.tune.analysis.experiment_analysis"):
                    tuner.fit()
        finally:
            shutil.rmtree(storage, ignore_errors=True)

    def _search(self, t: Trial, spec: Dict[str, Any], slots: int) -> _Search:
        import optuna
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        o = t.search
        prev = self.store.unit_rows(t.id)
        if o["separate"]:
            space = {"tau_t": tune.loguniform(o["low"], o["high"]), "tau_s": tune.loguniform(o["low"], o["high"])}
            points = [{"tau_t": a, "tau_s": b} for a, b in zip(prev["tau_t_config"], prev["tau_s_config"])] if len(prev) else []
        else:
            space = {"tau": tune.loguniform(o["low"], o["high"])}
            points = [{"tau": a} for a in prev["tau_t_config"]] if len(prev) else []
        rewards = [v if v == v else 0.0 for v in prev["val_acc"].astype(float)] if len(prev) else None
        searcher = OptunaSearch(
            space=OptunaSearch.convert_search_space(space), metric="val_acc", mode="max",
            sampler=optuna.samplers.TPESampler(seed=o["seed"] * 100003 + t.seed,
                                               n_startup_trials=o["startup_trials"]),
            points_to_evaluate=points or None, evaluated_rewards=rewards,
        )
        # Per-epoch reports only where a scheduler reads them (ASHA); otherwise the curve comes
        # with the final report.
        spec = dict(spec, per_epoch=bool(o["asha"]))
        return _Search(spec, searcher, budget=t.budget - len(prev), offset=len(prev), batch=slots)

    def _asha(self, t: Trial, spec: Dict[str, Any]):
        from ray.tune.schedulers import ASHAScheduler

        o = t.search
        return ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max",
                             # +1: reaching max_t stops a trial before its final report
                             max_t=_planned_epochs(spec) + 1,
                             grace_period=o["grace_period"], reduction_factor=o["reduction_factor"])


def _timing(marks: Dict[str, float], progress: Progress, slots: int) -> Dict[str, Any]:
    """Where a run's time went, in seconds: the fixed costs of the run (Ray's start and stop, the
    Tuner's start before the first trial and its end after the last) and, per trial, the mean of
    what an actor spent outside the trial's training (`seconds`): imports on a new actor, set-up
    in the trial (data, teacher, model), and the driver's gap between two trials on one actor."""
    t = sorted((x for x in progress.timings if x["start"] is not None), key=lambda x: x["start"])
    out: Dict[str, Any] = {
        "slots": slots, "trials": len(progress.timings),
        "wall_s": marks["ray_stopped"] - marks["run"],
        "ray_start_s": marks["ray_started"] - marks["run"],
        "ray_stop_s": marks["ray_stopped"] - marks["tune_ended"],
        "trial_seconds": sum(x["seconds"] or 0.0 for x in progress.timings),
    }
    if "tune_started" in marks and t:
        out["tuner_to_first_trial_s"] = t[0]["start"] - marks["tune_started"]
        out["last_trial_to_tuner_end_s"] = marks["tune_ended"] - max(x["end"] for x in t)
    n = max(len(t), 1)
    out["actors"] = len({x["pid"] for x in t if x["pid"] is not None})
    out["import_s_per_trial"] = sum(x["import_s"] or 0.0 for x in t) / n
    out["setup_s_per_trial"] = sum(max((x["run_s"] or 0.0) - (x["seconds"] or 0.0), 0.0)
                                   for x in t if x["kind"] != "teacher") / n
    out["fit_s_per_trial"] = sum(x["seconds"] or 0.0 for x in t) / n
    gaps, last_end = [], {}
    for x in t:
        if x["pid"] in last_end:
            gaps.append(x["start"] - last_end[x["pid"]])
        last_end[x["pid"]] = x["end"]
    out["between_trials_s_per_trial"] = sum(gaps) / n
    out["slot_s_per_trial_outside_fit"] = (slots * out["wall_s"] - out["trial_seconds"]) / n
    out["per_trial"] = t
    return out
