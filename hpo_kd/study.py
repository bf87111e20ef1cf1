"""Study files (`studies/*.toml`): parse, validate before any compute, and expand into trials.

A study crosses settings (data set x augmentation x fraction x teacher/student pair) with methods
and seeds. Every trial gets a stable id (a hash of what determines it), so a re-run can skip the
finished ones.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore

from . import data as data_mod
from . import methods as methods_mod
from . import models as models_mod
from .errors import UserError
from .files import digest

SEARCHES = ("grid", "optuna", "pbt")  # the searchers whose options this module parses (methods.SEARCHERS)


def method_keys() -> List[str]:
    """What [methods] may name: the searchers and every registered method that runs on its own."""
    return methods_mod.study_methods()


NUM = (int, float)


class StudyError(UserError):
    pass


def base_method(name: str) -> str:
    """A method variant is named METHOD:NAME (e.g. "mkd:from16", MKD with other options); its
    temperature method is METHOD."""
    return name.split(":", 1)[0]


def _err(path: str, key: str, msg: str):
    raise StudyError(f"{path}: {key}: {msg}")


def _typed(path, key, value, types, what):
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        _err(path, key, f"expected {what}, got {value!r}")
    if not isinstance(value, types):
        _err(path, key, f"expected {what}, got {value!r}")
    return value


def _num(path, key, value, lo=None, hi=None, lo_open=False, integer=False):
    _typed(path, key, value, int if integer else NUM, "an integer" if integer else "a number")
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi)
    if bad:
        left = "(" if lo_open else "["
        _err(
            path,
            key,
            f"{value!r} is out of range; allowed: {left}{lo if lo is not None else '-inf'}, "
            f"{hi if hi is not None else 'inf'}]",
        )
    return value


def _list(path, key, value, what):
    if not isinstance(value, list):
        value = [value]
    if not value:
        _err(path, key, f"must not be empty; expected {what}")
    return value


def _keys(path, prefix, table: Dict[str, Any], allowed):
    for k in table:
        if k not in allowed:
            _err(path, f"{prefix}{k}", f"unknown key; allowed: {', '.join(sorted(allowed))}")


@dataclass(frozen=True)
class Setting:
    dataset: str
    augment: str
    fraction: float
    teacher: str
    student: str
    root: Optional[str] = None
    options: Tuple[Tuple[str, Any], ...] = ()  # data set options, sorted (key, value) pairs
    name: Optional[str] = None  # the study file's name for the data (default: data set and options)
    teacher_checkpoint: Optional[str] = None  # absolute path of a trained teacher's weights
    checkpoint_hash: Optional[str] = None  # its content hash: part of the id
    train: Tuple[Tuple[str, Any], ...] = ()  # this setting's [train] values (e.g. a student's lr), sorted
    show_pair: bool = False  # the label names the pair (when other settings differ only by their pair)

    def data_options(self) -> Tuple[Tuple[str, Any], ...]:
        """The options that choose the data (not those that only say how it is read, such as
        streaming an image folder: a study can switch them and keep its finished trials)."""
        reading = data_mod.reading_options(self.dataset)
        return tuple((k, v) for k, v in self.options if k not in reading)

    @property
    def id(self) -> str:
        opts = "".join(f"|{k}={v}" for k, v in self.data_options())
        ckpt = f"|teacher_checkpoint={self.checkpoint_hash}" if self.teacher_checkpoint else ""
        own = "".join(f"|train.{k}={v}" for k, v in self.train)
        return f"{self.dataset}|{self.augment}|{self.fraction:g}|{self.teacher}>{self.student}{opts}{ckpt}{own}"

    @property
    def label(self) -> str:
        chosen = self.data_options()
        opts = "[" + ",".join(f"{k}={v}" for k, v in chosen) + "]" if chosen else ""
        pair = f",{self.teacher}>{self.student}" if self.show_pair else ""
        return f"{self.name or self.dataset + opts}({self.fraction:.0%},{self.augment}{pair})"


SEARCH_BUDGET_KEYS = ("trials", "startup_trials")


@dataclass
class Trial:
    """One unit of work: a teacher, one fixed-config student, or one Optuna search."""

    kind: str  # "teacher", "trial", "search"
    method: str  # teacher, grid, optuna, pbt, mkd, dts, ctkd, nokd
    setting: Setting
    seed: int
    config: Dict[str, Any]  # TrialConfig fields
    budget: int = 1  # number of Ray Tune trials this unit runs
    search: Dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        # A search's budget is not part of its id: raising `trials` extends the same search (its
        # finished trials are kept and handed to the sampler), and so does a new startup_trials.
        search = {k: v for k, v in self.search.items() if k not in SEARCH_BUDGET_KEYS}
        # Nor is how the data is read (streaming, workers): the same seed gives the same results.
        config = dict(self.config)
        if "data_options" in config:
            chosen = dict(self.setting.data_options())
            config.pop("data_options")
            if chosen:
                config["data_options"] = chosen
        blob = json.dumps(
            {"kind": self.kind, "method": self.method, "config": config, "search": search},
            sort_keys=True,
        )
        return digest(blob.encode())


@dataclass
class Study:
    name: str
    path: str
    settings: List[Setting]
    seeds: List[int]
    methods: Dict[str, Dict[str, Any]]
    train: Dict[str, Any]
    resources: Dict[str, float]
    split_seed: int = 0
    seed_varies: str = "student"  # what a seed varies: student | split (+ student) | teacher (+ split)
    report: Dict[str, Any] = field(default_factory=dict)
    overrides: Dict[str, Any] = field(default_factory=dict)  # what `hpo-kd run --seeds/--name` changed

    # ------------------------------------------------------------------ the trial plan
    def base_config(self, s: Setting, seed: int) -> Dict[str, Any]:
        cfg = dict(
            dataset=s.dataset,
            root=s.root,
            split_seed=self.split_seed,
            fraction=s.fraction,
            augment=s.augment,
            teacher=s.teacher,
            student=s.student,
            seed=seed,
            **self.train,
        )
        cfg.update(s.train)  # the setting's own values win
        if s.options:
            cfg["data_options"] = dict(s.options)
        if s.teacher_checkpoint:
            cfg["teacher_checkpoint"] = s.teacher_checkpoint
        if self.seed_varies in ("split", "teacher"):
            cfg["split_seed"] = self.split_seed + seed
        if self.seed_varies == "teacher":
            cfg["teacher_seed"] = seed
        return cfg

    def teachers(self) -> List[Trial]:
        """One teacher trial per distinct teacher (per seed when seeds vary the split or the
        teacher), so that every teacher is trained before the students that wait for it."""
        out, seen = [], set()
        needs_teacher = any(m != "nokd" for m in self.methods)
        if not needs_teacher:
            return out
        for seed in self.seeds:
            for s in self.settings:
                cfg = self.base_config(s, seed)
                cfg.pop("student")
                cfg.update(method="nokd", seed=cfg.get("teacher_seed", 0))
                key = json.dumps(cfg, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                out.append(Trial("teacher", "teacher", s, cfg["seed"], cfg))
        return out

    def student_trials(self, settings=None, seeds=None) -> List[Trial]:
        out = []
        for s in settings or self.settings:
            for seed in seeds or self.seeds:
                base = self.base_config(s, seed)
                for m, opts in self.methods.items():
                    if m == "grid":
                        for tt, ts in opts["pairs"]:
                            out.append(
                                Trial("trial", "grid", s, seed, dict(base, method=opts["method"], tau_t=tt, tau_s=ts))
                            )
                    elif m == "optuna":
                        # the searched method is in the config (and so in the id), not in `search`
                        search = {k: opts[k] for k in sorted(opts) if k != "method"}
                        out.append(
                            Trial(
                                "search",
                                "optuna",
                                s,
                                seed,
                                dict(base, method=opts["method"]),
                                budget=opts["trials"],
                                search=search,
                            )
                        )
                    elif m == "pbt":  # one population (one Tuner of its own: hpo_kd.tune.pbt)
                        search = {k: opts[k] for k in sorted(opts) if k != "method"}
                        out.append(
                            Trial(
                                "search",
                                "pbt",
                                s,
                                seed,
                                dict(base, method=opts["method"]),
                                budget=opts["population"],
                                search=search,
                            )
                        )
                    else:
                        o = dict(opts)
                        cfg = dict(base, method=base_method(m), method_options=o)
                        for k in ("tau_t", "tau_s"):
                            if k in o:
                                cfg[k] = o.pop(k)
                        out.append(Trial("trial", m, s, seed, cfg))
        return out

    def plan(self) -> List[Trial]:
        return self.teachers() + self.student_trials()

    def transfer_trials(self, setting_id: str, runs) -> List[Trial]:
        """Fixed-temperature trials on setting `setting_id`, one per (seed, tau_t, tau_s) in `runs`:
        the temperatures selected elsewhere, run here for the transfer matrix."""
        setting = next((s for s in self.settings if s.id == setting_id), None)
        if setting is None:
            raise StudyError(f"{self.path}: setting {setting_id!r} is no longer in this study")
        return [
            Trial(
                "trial",
                "transfer",
                setting,
                seed,
                dict(self.base_config(setting, seed), method="fixed", tau_t=tt, tau_s=ts),
            )
            for seed, tt, ts in runs
        ]


# ---------------------------------------------------------------------- parsing and validation

TOP_KEYS = {"name", "seeds", "split_seed", "seed_varies", "settings", "methods", "train", "resources", "report"}
SETTING_KEYS = {
    "dataset",
    "augment",
    "fraction",
    "teacher",
    "student",
    "pairs",
    "root",
    "options",
    "name",
    "teacher_checkpoint",
    "train",
}
SEED_VARIES = ("student", "split", "teacher")
REPORT_KEYS = {"margin", "max_spread", "smoke_test", "sources", "published"}
PUBLISHED_KEYS = {"dataset", "teacher", "student", "source", "figures"}
# What a published figure is of: the teacher, the student alone, Hinton's KD at tau = 4 (the
# grid's tau = 4 run), or a method of the study by its name (e.g. ctkd, dts).
PUBLISHED_FIGURES = ("teacher", "nokd", "kd")
RESOURCE_KEYS = {"cpus_per_trial", "gpus_per_trial", "max_concurrent", "students_per_trial", "reproducible"}
# Students of one setting and seed that train together in one Ray Tune trial, at most (1: each alone).
STUDENTS_PER_TRIAL = 8
GRID_KEYS = {"temperatures", "pairs", "method"}
OPTUNA_KEYS = {
    "trials",
    "low",
    "high",
    "separate",
    "seed",
    "startup_trials",
    "asha",
    "grace_period",
    "reduction_factor",
    "method",
}
PBT_KEYS = {"population", "interval", "quantile", "resample_probability", "low", "high", "seed", "method"}


def _searched_method(path, key, opts, searcher: str) -> str:
    """The method whose temperatures a searcher's table searches: `method = NAME` (one whose class
    is `searchable`), by default the searcher's own (`fixed`)."""
    default = methods_mod.SEARCHERS.get(searcher).method
    name = opts.get("method", default)
    allowed = [n for n in methods_mod.names() if methods_mod.METHODS.get(n).searchable]
    if not isinstance(name, str) or name not in allowed:
        _err(path, key, f"{name!r} is not a method a searcher can search; allowed: {', '.join(allowed)}")
    return name


def _check_model(path, key, name):
    _typed(path, key, name, str, "a model name")
    if name in models_mod.MODELS:
        return name
    import timm

    if not timm.is_model(name):
        _err(path, key, f"unknown model {name!r}; allowed: {', '.join(models_mod.names())} or any timm model name")
    return name


def _settings(path, raw) -> List[Setting]:
    raw = _list(path, "settings", raw, "a list of [[settings]] tables")
    out = []
    for i, t in enumerate(raw):
        p = f"settings[{i}]."
        if not isinstance(t, dict):
            _err(path, f"settings[{i}]", "expected a table")
        _keys(path, p, t, SETTING_KEYS)
        if "dataset" not in t:
            _err(path, p + "dataset", "missing; allowed: " + ", ".join(data_mod.names()))
        datasets = _list(path, p + "dataset", t["dataset"], "data set names")
        for d in datasets:
            if d not in data_mod.DATASETS:
                _err(path, p + "dataset", f"unknown data set {d!r}; allowed: {', '.join(data_mod.names())}")
        augments = _list(path, p + "augment", t.get("augment", "none"), "augmentation levels")
        for a in augments:
            if a not in data_mod.AUGMENTS:
                _err(path, p + "augment", f"unknown augmentation {a!r}; allowed: {', '.join(data_mod.AUGMENTS)}")
        fractions = _list(path, p + "fraction", t.get("fraction", 1.0), "numbers in (0, 1]")
        for f in fractions:
            _num(path, p + "fraction", f, 0, 1, lo_open=True)
        if "pairs" in t:
            if "teacher" in t or "student" in t:
                _err(path, p + "pairs", "give either pairs or teacher/student, not both")
            pairs = _list(path, p + "pairs", t["pairs"], "[teacher, student] pairs")
            for j, pr in enumerate(pairs):
                if not (isinstance(pr, list) and len(pr) == 2):
                    _err(path, f"{p}pairs[{j}]", f"expected [teacher, student], got {pr!r}")
        else:
            pairs = [[t.get("teacher"), t.get("student")]]
        options = t.get("options", {})
        if not isinstance(options, dict):
            _err(path, p + "options", "expected a table of data set options, e.g. {train_size = 8000}")
        for d in datasets:
            try:
                data_mod.check_options(d, options)
            except UserError as e:
                _err(path, p + "options", str(e))
        sname = t.get("name")
        if sname is not None:
            _typed(path, p + "name", sname, str, 'a short name for the data, e.g. "mnist1d-12k"')
            if len(datasets) > 1:
                _err(path, p + "name", "one name for several data sets; give each its own [[settings]]")
        root = t.get("root")
        if root is not None:
            _typed(path, p + "root", root, str, "a folder path")
            root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(root)))
        ckpt, ckpt_hash = t.get("teacher_checkpoint"), None
        if ckpt is not None:
            from .models.checkpoint import file_hash

            _typed(path, p + "teacher_checkpoint", ckpt, str, "the path of a teacher's state_dict file")
            if "pairs" in t:
                _err(path, p + "teacher_checkpoint", 'goes with one teacher = "NAME", not with pairs')
            ckpt = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(ckpt)))
            if not os.path.isfile(ckpt):
                _err(path, p + "teacher_checkpoint", f"file not found: {ckpt}")
            ckpt_hash = file_hash(ckpt)
        own = tuple(sorted(_train(path, t.get("train", {}), p + "train").items()))
        for d, a, f, (te, st) in itertools.product(datasets, augments, fractions, pairs):
            dflt = data_mod.train_defaults(d)
            te = _check_model(path, p + "teacher", te or dflt["teacher"])
            st = _check_model(path, p + "student", st or dflt["student"])
            if data_mod.needs_root(d) and root is None:
                _err(path, p + "root", f"data set {d!r} needs a local root folder")
            out.append(
                Setting(d, a, float(f), te, st, root, tuple(sorted(options.items())), sname, ckpt, ckpt_hash, own)
            )
    labels = [s.label for s in out]
    out = [dataclasses.replace(s, show_pair=True) if labels.count(s.label) > 1 else s for s in out]
    for what, keys in (("setting", [s.id for s in out]), ("setting label", [s.label for s in out])):
        dup = {i for i in keys if keys.count(i) > 1}
        if dup:
            _err(path, "settings", f"duplicate {what}(s): {', '.join(sorted(dup))}")
    return out


def _methods(path, raw) -> Dict[str, Dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        _err(path, "methods", "must be a non-empty table; allowed methods: " + ", ".join(method_keys()))
    out = {}
    for m, opts in raw.items():
        p = f"methods.{m}"
        keys = method_keys()
        if base_method(m) not in keys or (m != base_method(m) and base_method(m) in SEARCHES):
            own = [k for k in keys if k not in SEARCHES]
            _err(
                path,
                p,
                f"unknown method; allowed: {', '.join(keys)}, or a variant "
                f'"METHOD:NAME" of {", ".join(own)} (e.g. [methods."mkd:from16"])',
            )
        if not isinstance(opts, dict):
            _err(path, p, "expected a table of options (may be empty)")
        opts = dict(opts)
        if m == "grid":
            _keys(path, p + ".", opts, GRID_KEYS)
            if ("temperatures" in opts) == ("pairs" in opts):
                _err(path, p, "give exactly one of temperatures = [...] or pairs = [[tau_t, tau_s], ...]")
            if "temperatures" in opts:
                temps = _list(path, p + ".temperatures", opts["temperatures"], "positive numbers")
                pairs = [[t, t] for t in temps]
            else:
                pairs = _list(path, p + ".pairs", opts["pairs"], "[tau_t, tau_s] pairs")
            for j, pr in enumerate(pairs):
                if not (isinstance(pr, list) and len(pr) == 2):
                    _err(path, f"{p}.pairs[{j}]", f"expected [tau_t, tau_s], got {pr!r}")
                for v in pr:
                    _num(path, p + ".temperatures", v, 0, None, lo_open=True)
            out[m] = {
                "pairs": [[float(a), float(b)] for a, b in pairs],
                "method": _searched_method(path, p + ".method", opts, m),
            }
        elif m == "optuna":
            _keys(path, p + ".", opts, OPTUNA_KEYS)
            trials = _num(path, p + ".trials", opts.get("trials", 8), 1, None, integer=True)
            # Optuna's default (10 random trials before TPE) would make a small budget pure random
            # search: by default half the budget (at least 2, at most 10) is random.
            startup = opts.get("startup_trials", min(10, max(2, trials // 2)))
            o = {
                "trials": trials,
                "startup_trials": _num(path, p + ".startup_trials", startup, 1, None, integer=True),
                "low": float(_num(path, p + ".low", opts.get("low", 1.0), 0, None, lo_open=True)),
                "high": float(_num(path, p + ".high", opts.get("high", 16.0), 0, None, lo_open=True)),
                "separate": _typed(path, p + ".separate", opts.get("separate", False), bool, "true or false"),
                "seed": _num(path, p + ".seed", opts.get("seed", 0), 0, None, integer=True),
                "asha": _typed(path, p + ".asha", opts.get("asha", False), bool, "true or false"),
                "grace_period": _num(path, p + ".grace_period", opts.get("grace_period", 2), 1, None, integer=True),
                "reduction_factor": _num(
                    path, p + ".reduction_factor", opts.get("reduction_factor", 2), 2, None, integer=True
                ),
                "method": _searched_method(path, p + ".method", opts, m),
            }
            if o["low"] >= o["high"]:
                _err(path, p + ".low", f"low = {o['low']} must be below high = {o['high']}")
            out[m] = o
        elif m == "pbt":
            _keys(path, p + ".", opts, PBT_KEYS)
            o = {
                "population": _num(path, p + ".population", opts.get("population", 5), 2, None, integer=True),
                "quantile": float(_num(path, p + ".quantile", opts.get("quantile", 0.25), 0, 0.5, lo_open=True)),
                "resample_probability": float(
                    _num(path, p + ".resample_probability", opts.get("resample_probability", 0.25), 0, 1)
                ),
                "low": float(_num(path, p + ".low", opts.get("low", 1.0), 0, None, lo_open=True)),
                "high": float(_num(path, p + ".high", opts.get("high", 16.0), 0, None, lo_open=True)),
                "seed": _num(path, p + ".seed", opts.get("seed", 0), 0, None, integer=True),
                "method": _searched_method(path, p + ".method", opts, m),
            }
            if "interval" in opts:  # else a quarter of the trial's epochs (hpo_kd.tune.pbt)
                o["interval"] = _num(path, p + ".interval", opts["interval"], 1, None, integer=True)
            if o["low"] >= o["high"]:
                _err(path, p + ".low", f"low = {o['low']} must be below high = {o['high']}")
            if o["method"] != "fixed":
                _err(path, p + ".method", "PBT searches the `fixed` method's temperature only")
            out[m] = o
        else:
            allowed = methods_mod.options_of(base_method(m))
            _keys(path, p + ".", opts, set(allowed))
            try:
                methods_mod.create(base_method(m), **opts)
            except UserError as e:
                _err(path, p, str(e))
            out[m] = opts
    return out


def _train(path, raw, where: str = "train") -> Dict[str, Any]:
    """[train] (or a setting's `train = {...}`): the trial options that TrialConfig's SCHEMA marks
    as study keys, checked by it."""
    from .train import SCHEMA, STUDY_TRAIN_KEYS

    if not isinstance(raw, dict):
        _err(path, where, "expected a table")
    _keys(path, where + ".", raw, set(STUDY_TRAIN_KEYS))
    for k, v in raw.items():
        try:
            SCHEMA[k].check(f"{where}.{k}", v)
        except UserError as e:
            raise StudyError(f"{path}: {e}") from None
    return dict(raw)


def _resources(path, raw) -> Dict[str, float]:
    if not isinstance(raw, dict):
        _err(path, "resources", "expected a table")
    _keys(path, "resources.", raw, RESOURCE_KEYS)
    r = {
        "cpus_per_trial": _num(path, "resources.cpus_per_trial", raw.get("cpus_per_trial", 1), 0, None, lo_open=True),
        "gpus_per_trial": _num(path, "resources.gpus_per_trial", raw.get("gpus_per_trial", 0), 0, None),
    }
    if "max_concurrent" in raw:
        r["max_concurrent"] = _num(path, "resources.max_concurrent", raw["max_concurrent"], 1, None, integer=True)
    r["students_per_trial"] = _num(
        path, "resources.students_per_trial", raw.get("students_per_trial", STUDENTS_PER_TRIAL), 1, None, integer=True
    )
    r["reproducible"] = raw.get("reproducible", False)
    if not isinstance(r["reproducible"], bool):
        _err(path, "resources.reproducible", f"{r['reproducible']!r} is not allowed; allowed: true or false")
    g = r["gpus_per_trial"]
    if g > 1 and g != int(g):
        _err(path, "resources.gpus_per_trial", f"{g} is neither a fraction of one GPU nor a whole number")
    return r


def _report(path, raw) -> Dict[str, Any]:
    if not isinstance(raw, dict):
        _err(path, "report", "expected a table")
    _keys(path, "report.", raw, REPORT_KEYS)
    out = {
        "margin": float(_num(path, "report.margin", raw.get("margin", 0.5), 0, None, lo_open=True)),
        "max_spread": float(_num(path, "report.max_spread", raw.get("max_spread", 1.0), 0, None, lo_open=True)),
    }
    if "smoke_test" in raw:
        out["smoke_test"] = _typed(path, "report.smoke_test", raw["smoke_test"], str, "a sentence")
    sources = raw.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        _err(path, "report.sources", 'expected a table of source names and citations, e.g. crd = "Tian et al. ..."')
    published = []
    entries = (
        _list(path, "report.published", raw["published"], "[[report.published]] tables") if "published" in raw else []
    )
    for i, t in enumerate(entries):
        p = f"report.published[{i}]."
        if not isinstance(t, dict):
            _err(path, f"report.published[{i}]", "expected a table")
        _keys(path, p, t, PUBLISHED_KEYS)
        for k in PUBLISHED_KEYS:
            if k not in t:
                _err(path, p + k, "missing; a published figure names " + ", ".join(sorted(PUBLISHED_KEYS)))
        for k in ("dataset", "teacher", "student", "source"):
            _typed(path, p + k, t[k], str, "a name")
        if t["source"] not in sources:
            _err(
                path,
                p + "source",
                f"{t['source']!r} is not in [report.sources]; allowed: " + (", ".join(sorted(sources)) or "none given"),
            )
        figs = t["figures"]
        allowed = set(PUBLISHED_FIGURES) | set(methods_mod.METHODS.names())
        if not isinstance(figs, dict) or not figs:
            _err(path, p + "figures", "expected a table such as {teacher = 72.34, nokd = 69.06, kd = 70.66}")
        for k, v in figs.items():
            if k not in allowed:
                _err(path, p + "figures." + k, f"unknown figure; allowed: {', '.join(sorted(allowed))}")
            _num(path, p + "figures." + k, v, 0, 100)
        published.append({k: t[k] for k in ("dataset", "teacher", "student", "source")} | {"figures": dict(figs)})
    if published:
        out["sources"], out["published"] = dict(sources), published
    return out


def load_study(path: str) -> Study:
    """Read and validate a study file; every problem is a StudyError naming file and key."""
    if not os.path.isfile(path):
        raise StudyError(f"{path}: study file not found")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path}: not valid TOML: {e}") from None
    _keys(path, "", raw, TOP_KEYS)
    name = raw.get("name", os.path.splitext(os.path.basename(path))[0])
    _typed(path, "name", name, str, "a string")
    if not _is_word(name):
        _err(path, "name", f"{name!r} must be a non-empty word without slashes or spaces")
    if "settings" not in raw:
        _err(path, "settings", "missing; add at least one [[settings]] table")
    if "methods" not in raw:
        _err(path, "methods", "missing; allowed methods: " + ", ".join(method_keys()))
    seeds = _list(path, "seeds", raw.get("seeds", [0]), "a list of integers")
    for s in seeds:
        _num(path, "seeds", s, 0, None, integer=True)
    if len(set(seeds)) != len(seeds):
        _err(path, "seeds", f"duplicate seeds in {seeds}")
    seed_varies = raw.get("seed_varies", "student")
    if seed_varies not in SEED_VARIES:
        _err(
            path,
            "seed_varies",
            f"{seed_varies!r} is not allowed; allowed: {', '.join(SEED_VARIES)} "
            "(student: the student's seed only; split: also the data split; "
            "teacher: also the split and the teacher)",
        )
    study = Study(
        seed_varies=seed_varies,
        report=_report(path, raw.get("report", {})),
        name=name,
        path=os.path.abspath(path),
        settings=_settings(path, raw["settings"]),
        seeds=[int(s) for s in seeds],
        methods=_methods(path, raw["methods"]),
        train=_train(path, raw.get("train", {})),
        resources=_resources(path, raw.get("resources", {})),
        split_seed=_num(path, "split_seed", raw.get("split_seed", 0), 0, None, integer=True),
    )
    _check_trials(study)
    return study


OVERRIDES = "overrides.json"  # beside a store's copy of its study file


def _is_word(name: str) -> bool:
    """A study name: it names the folder runs/<name>/."""
    return bool(name) and not any(c in name for c in "/\\ ")


def parse_seeds(text: str) -> List[int]:
    """`8-15` or `8,9,10` (or both, `0-3,8`) as a list of distinct non-negative integers."""
    out: List[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or (hi and int(hi) < int(lo)):
            raise StudyError(f"--seeds: {text!r} is not allowed; allowed: integers and ranges, e.g. 8-15 or 0,2,4")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if len(set(out)) != len(out):
        raise StudyError(f"--seeds: {text!r} repeats a seed")
    return out


def overridden(study: Study, seeds: Optional[List[int]] = None, name: Optional[str] = None) -> Study:
    """The same study on other seeds (a second draw) or under another name: its results go to
    runs/<name>/, and the store keeps what was overridden beside its copy of the study file."""
    changes = {k: v for k, v in (("seeds", seeds), ("name", name)) if v is not None}
    if "name" in changes and not _is_word(name):
        raise StudyError(f"--name: {name!r} must be a non-empty word without slashes or spaces")
    return dataclasses.replace(study, **changes, overrides={**study.overrides, **changes})


def load_stored(folder: str) -> Study:
    """The study of a store: its copy of the study file with the overrides it ran under."""
    study = load_study(os.path.join(folder, "study.toml"))
    path = os.path.join(folder, OVERRIDES)
    if os.path.isfile(path):
        with open(path) as f:
            study = overridden(study, **json.load(f))
    return study


def _check_trials(study: Study) -> None:
    """Build every planned trial's config and method as a worker would, so that whatever a trial
    would reject is rejected here, before any compute (and by `--dry-run`)."""
    from .train import TrialConfig, make_method

    seen = set()
    for t in study.plan():
        key = json.dumps(t.config, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            make_method(TrialConfig(**t.config).resolved())
        except UserError as e:
            raise StudyError(f"{study.path}: {t.setting.label}, {t.method}, seed {t.seed}: {e}") from None


def plan_counts(trials: List[Trial]):
    """(setting label, method) -> number of Ray Tune trials, for --dry-run."""
    counts: Dict[tuple, int] = {}
    for t in trials:
        k = (t.setting.label, t.method)
        counts[k] = counts.get(k, 0) + t.budget
    return counts
