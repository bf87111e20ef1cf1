"""Study files (`studies/*.toml`): parse, validate before any compute, and expand into trials.

A study crosses settings (data set x augmentation x fraction x teacher/student pair) with methods
and seeds. Every trial gets a stable id (a hash of what determines it, `hpo_kd.plan`), so a re-run
can skip the finished ones. A searcher's table is read and expanded by its own class
(`hpo_kd.searchers`): this module knows none of them by name.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore

from . import data as data_mod
from . import methods as methods_mod
from . import models as models_mod
from .checks import StudyError, as_list, fail, known_keys, number, typed
from .errors import UserError
from .plan import Setting, Trial
from .searchers import SEARCHERS

__all__ = ["Setting", "Study", "StudyError", "Trial", "load_study", "load_stored", "overridden", "plan_counts"]


def method_keys() -> List[str]:
    """What [methods] may name: the searchers and every registered method that runs on its own."""
    return methods_mod.study_methods()


def base_method(name: str) -> str:
    """A method variant is named METHOD:NAME (e.g. "mkd:from16", MKD with other options); its
    temperature method is METHOD."""
    return name.split(":", 1)[0]


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
                    if m in SEARCHERS:  # a searcher expands its own table (hpo_kd.searchers)
                        out.extend(SEARCHERS.get(m).expand(opts, s, seed, base))
                        continue
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


def _check_model(path, key, name):
    typed(path, key, name, str, "a model name")
    if name in models_mod.MODELS:
        return name
    import timm

    if not timm.is_model(name):
        fail(path, key, f"unknown model {name!r}; allowed: {', '.join(models_mod.names())} or any timm model name")
    return name


def _settings(path, raw) -> List[Setting]:
    raw = as_list(path, "settings", raw, "a list of [[settings]] tables")
    out = []
    for i, t in enumerate(raw):
        p = f"settings[{i}]."
        if not isinstance(t, dict):
            fail(path, f"settings[{i}]", "expected a table")
        known_keys(path, p, t, SETTING_KEYS)
        if "dataset" not in t:
            fail(path, p + "dataset", "missing; allowed: " + ", ".join(data_mod.names()))
        datasets = as_list(path, p + "dataset", t["dataset"], "data set names")
        for d in datasets:
            if d not in data_mod.DATASETS:
                fail(path, p + "dataset", f"unknown data set {d!r}; allowed: {', '.join(data_mod.names())}")
        augments = as_list(path, p + "augment", t.get("augment", "none"), "augmentation levels")
        for a in augments:
            if a not in data_mod.AUGMENTS:
                fail(path, p + "augment", f"unknown augmentation {a!r}; allowed: {', '.join(data_mod.AUGMENTS)}")
        fractions = as_list(path, p + "fraction", t.get("fraction", 1.0), "numbers in (0, 1]")
        for f in fractions:
            number(path, p + "fraction", f, 0, 1, lo_open=True)
        if "pairs" in t:
            if "teacher" in t or "student" in t:
                fail(path, p + "pairs", "give either pairs or teacher/student, not both")
            pairs = as_list(path, p + "pairs", t["pairs"], "[teacher, student] pairs")
            for j, pr in enumerate(pairs):
                if not (isinstance(pr, list) and len(pr) == 2):
                    fail(path, f"{p}pairs[{j}]", f"expected [teacher, student], got {pr!r}")
        else:
            pairs = [[t.get("teacher"), t.get("student")]]
        options = t.get("options", {})
        if not isinstance(options, dict):
            fail(path, p + "options", "expected a table of data set options, e.g. {train_size = 8000}")
        for d in datasets:
            try:
                data_mod.check_options(d, options)
            except UserError as e:
                fail(path, p + "options", str(e))
        sname = t.get("name")
        if sname is not None:
            typed(path, p + "name", sname, str, 'a short name for the data, e.g. "mnist1d-12k"')
            if len(datasets) > 1:
                fail(path, p + "name", "one name for several data sets; give each its own [[settings]]")
        root = t.get("root")
        if root is not None:
            typed(path, p + "root", root, str, "a folder path")
            root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(root)))
        ckpt, ckpt_hash = t.get("teacher_checkpoint"), None
        if ckpt is not None:
            from .models.checkpoint import file_hash

            typed(path, p + "teacher_checkpoint", ckpt, str, "the path of a teacher's state_dict file")
            if "pairs" in t:
                fail(path, p + "teacher_checkpoint", 'goes with one teacher = "NAME", not with pairs')
            ckpt = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(ckpt)))
            if not os.path.isfile(ckpt):
                fail(path, p + "teacher_checkpoint", f"file not found: {ckpt}")
            ckpt_hash = file_hash(ckpt)
        own = tuple(sorted(_train(path, t.get("train", {}), p + "train").items()))
        for d, a, f, (te, st) in itertools.product(datasets, augments, fractions, pairs):
            dflt = data_mod.train_defaults(d)
            te = _check_model(path, p + "teacher", te or dflt["teacher"])
            st = _check_model(path, p + "student", st or dflt["student"])
            if data_mod.needs_root(d) and root is None:
                fail(path, p + "root", f"data set {d!r} needs a local root folder")
            out.append(
                Setting(d, a, float(f), te, st, root, tuple(sorted(options.items())), sname, ckpt, ckpt_hash, own)
            )
    labels = [s.label for s in out]
    out = [dataclasses.replace(s, show_pair=True) if labels.count(s.label) > 1 else s for s in out]
    for what, keys in (("setting", [s.id for s in out]), ("setting label", [s.label for s in out])):
        dup = {i for i in keys if keys.count(i) > 1}
        if dup:
            fail(path, "settings", f"duplicate {what}(s): {', '.join(sorted(dup))}")
    return out


def _methods(path, raw) -> Dict[str, Dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        fail(path, "methods", "must be a non-empty table; allowed methods: " + ", ".join(method_keys()))
    out = {}
    for m, opts in raw.items():
        p = f"methods.{m}"
        keys = method_keys()
        if base_method(m) not in keys or (m != base_method(m) and base_method(m) in SEARCHERS):
            own = [k for k in keys if k not in SEARCHERS]
            fail(
                path,
                p,
                f"unknown method; allowed: {', '.join(keys)}, or a variant "
                f'"METHOD:NAME" of {", ".join(own)} (e.g. [methods."mkd:from16"])',
            )
        if not isinstance(opts, dict):
            fail(path, p, "expected a table of options (may be empty)")
        opts = dict(opts)
        if m in SEARCHERS:  # a searcher reads its own table (hpo_kd.searchers)
            out[m] = SEARCHERS.get(m).read(path, p, opts)
            continue
        allowed = methods_mod.options_of(base_method(m))
        known_keys(path, p + ".", opts, set(allowed))
        try:
            methods_mod.create(base_method(m), **opts)
        except UserError as e:
            fail(path, p, str(e))
        out[m] = opts
    return out


def _train(path, raw, where: str = "train") -> Dict[str, Any]:
    """[train] (or a setting's `train = {...}`): the trial options that TrialConfig's SCHEMA marks
    as study keys, checked by it."""
    from .train import SCHEMA, STUDY_TRAIN_KEYS

    if not isinstance(raw, dict):
        fail(path, where, "expected a table")
    known_keys(path, where + ".", raw, set(STUDY_TRAIN_KEYS))
    for k, v in raw.items():
        try:
            SCHEMA[k].check(f"{where}.{k}", v)
        except UserError as e:
            raise StudyError(f"{path}: {e}") from None
    return dict(raw)


def _resources(path, raw) -> Dict[str, float]:
    if not isinstance(raw, dict):
        fail(path, "resources", "expected a table")
    known_keys(path, "resources.", raw, RESOURCE_KEYS)
    r = {
        "cpus_per_trial": number(path, "resources.cpus_per_trial", raw.get("cpus_per_trial", 1), 0, None, lo_open=True),
        "gpus_per_trial": number(path, "resources.gpus_per_trial", raw.get("gpus_per_trial", 0), 0, None),
    }
    if "max_concurrent" in raw:
        r["max_concurrent"] = number(path, "resources.max_concurrent", raw["max_concurrent"], 1, None, integer=True)
    r["students_per_trial"] = number(
        path, "resources.students_per_trial", raw.get("students_per_trial", STUDENTS_PER_TRIAL), 1, None, integer=True
    )
    r["reproducible"] = raw.get("reproducible", False)
    if not isinstance(r["reproducible"], bool):
        fail(path, "resources.reproducible", f"{r['reproducible']!r} is not allowed; allowed: true or false")
    g = r["gpus_per_trial"]
    if g > 1 and g != int(g):
        fail(path, "resources.gpus_per_trial", f"{g} is neither a fraction of one GPU nor a whole number")
    return r


def _report(path, raw) -> Dict[str, Any]:
    if not isinstance(raw, dict):
        fail(path, "report", "expected a table")
    known_keys(path, "report.", raw, REPORT_KEYS)
    out = {
        "margin": float(number(path, "report.margin", raw.get("margin", 0.5), 0, None, lo_open=True)),
        "max_spread": float(number(path, "report.max_spread", raw.get("max_spread", 1.0), 0, None, lo_open=True)),
    }
    if "smoke_test" in raw:
        out["smoke_test"] = typed(path, "report.smoke_test", raw["smoke_test"], str, "a sentence")
    sources = raw.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        fail(path, "report.sources", 'expected a table of source names and citations, e.g. crd = "Tian et al. ..."')
    published = []
    entries = (
        as_list(path, "report.published", raw["published"], "[[report.published]] tables") if "published" in raw else []
    )
    for i, t in enumerate(entries):
        p = f"report.published[{i}]."
        if not isinstance(t, dict):
            fail(path, f"report.published[{i}]", "expected a table")
        known_keys(path, p, t, PUBLISHED_KEYS)
        for k in PUBLISHED_KEYS:
            if k not in t:
                fail(path, p + k, "missing; a published figure names " + ", ".join(sorted(PUBLISHED_KEYS)))
        for k in ("dataset", "teacher", "student", "source"):
            typed(path, p + k, t[k], str, "a name")
        if t["source"] not in sources:
            fail(
                path,
                p + "source",
                f"{t['source']!r} is not in [report.sources]; allowed: " + (", ".join(sorted(sources)) or "none given"),
            )
        figs = t["figures"]
        allowed = set(PUBLISHED_FIGURES) | set(methods_mod.METHODS.names())
        if not isinstance(figs, dict) or not figs:
            fail(path, p + "figures", "expected a table such as {teacher = 72.34, nokd = 69.06, kd = 70.66}")
        for k, v in figs.items():
            if k not in allowed:
                fail(path, p + "figures." + k, f"unknown figure; allowed: {', '.join(sorted(allowed))}")
            number(path, p + "figures." + k, v, 0, 100)
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
    known_keys(path, "", raw, TOP_KEYS)
    name = raw.get("name", os.path.splitext(os.path.basename(path))[0])
    typed(path, "name", name, str, "a string")
    if not _is_word(name):
        fail(path, "name", f"{name!r} must be a non-empty word without slashes or spaces")
    if "settings" not in raw:
        fail(path, "settings", "missing; add at least one [[settings]] table")
    if "methods" not in raw:
        fail(path, "methods", "missing; allowed methods: " + ", ".join(method_keys()))
    seeds = as_list(path, "seeds", raw.get("seeds", [0]), "a list of integers")
    for s in seeds:
        number(path, "seeds", s, 0, None, integer=True)
    if len(set(seeds)) != len(seeds):
        fail(path, "seeds", f"duplicate seeds in {seeds}")
    seed_varies = raw.get("seed_varies", "student")
    if seed_varies not in SEED_VARIES:
        fail(
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
        split_seed=number(path, "split_seed", raw.get("split_seed", 0), 0, None, integer=True),
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
