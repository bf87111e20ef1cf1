"""TensorBoard event files from a store, read back without the tensorboard package: the TFRecord
framing by hand, the events with tensorboardX's own protobuf."""

import os
import struct

import numpy as np
import pytest

from hpo_kd.cli import main
from hpo_kd.store import Store
from hpo_kd.tensorboard import run_name, safe, write_events

pytest.importorskip("tensorboardX")
from tensorboardX.proto.event_pb2 import Event  # noqa: E402

A = "mnist1d|none|1|cnn_mid>cnn_bn"
LABEL = "mnist1d(100%,none)"


def _curve(n, seed, extra=None):
    rows = []
    for e in range(1, n + 1):
        r = {
            "epoch": e,
            "train_loss": 2.0 / e + seed,
            "train_kd": 1.0 / e,
            "val_acc": 0.5 + 0.01 * e,
            "test_acc": 0.4 + 0.02 * e - 0.001 * seed,
            "tau_t": 4.0 + 0.1 * e,
            "tau_s": 4.0 - 0.1 * e,
            "lr": 0.1 / e,
            "epoch_seconds": 1.5,
            "samples_per_s": 1000.0 + e,
        }
        if extra:
            r.update(extra(e))
        rows.append(r)
    return rows


def _row(tid, method, seed, tau=None, status="ok"):
    return {
        "trial_id": tid,
        "unit_id": tid,
        "study": "synthetic",
        "setting": A,
        "setting_label": LABEL,
        "dataset": "mnist1d",
        "teacher": "cnn_mid",
        "student": "cnn_bn",
        "method": method,
        "seed": seed,
        "tau_t_config": tau,
        "tau_s_config": tau,
        "status": status,
        "val_acc": 0.5,
        "test_acc": 0.5,
        "epochs": 3,
        "epochs_run": 3,
        "seconds": 4.5,
        "started_at": 1000.0 + seed,
    }


def _store(folder):
    s = Store(str(folder))
    s.add(_row("a1b2c3d4e5f60718", "grid", 0, 4.0), _curve(3, 0))
    s.add(
        _row("unit0123456789ab-fedcba9876543210", "mkd:from16", 1, 16.0),
        _curve(3, 1, extra=lambda e: {"meta_loss": 0.3 * e}),
    )
    s.add(_row("0011223344556677", "nokd", 2), _curve(2, 2))
    s.add(_row("deadbeefdeadbeef", "grid", 0, 8.0, status="failed"), _curve(1, 0))  # retried: not written
    return s


def _records(path):
    """The records of a TFRecord file: uint64 length, uint32 masked crc, data, uint32 masked crc."""
    with open(path, "rb") as f:
        buf = f.read()
    out, i = [], 0
    while i < len(buf):
        (n,) = struct.unpack("<Q", buf[i : i + 8])
        i += 12
        out.append(buf[i : i + n])
        i += n + 4
    assert i == len(buf)
    return out


def _read_run(run_dir):
    """{tag: {step: value}} and {step: wall time} of every event file of one run."""
    scalars, walls = {}, {}
    files = [f for f in os.listdir(run_dir) if "tfevents" in f]
    assert files, run_dir
    for f in files:
        for rec in _records(os.path.join(run_dir, f)):
            ev = Event()
            ev.ParseFromString(rec)
            for v in ev.summary.value:
                assert (v.tag, ev.step) not in {(t, s) for t in scalars for s in scalars[t]}
                scalars.setdefault(v.tag, {})[ev.step] = v.simple_value
                walls[ev.step] = ev.wall_time
    return scalars, walls


def _runs(logdir):
    return sorted(
        os.path.relpath(d, logdir).replace(os.sep, "/")
        for d, _, files in os.walk(logdir)
        if any("tfevents" in f for f in files)
    )


def test_events_hold_every_curve_and_are_written_once(tmp_path):
    folder = tmp_path / "runs" / "synthetic"
    s = _store(folder)
    assert write_events(str(folder)) == 3
    logdir = str(folder / "tensorboard")
    assert _runs(logdir) == sorted(
        [
            "mnist1d_100pct_none/grid-tau4/seed0-e5f60718",
            "mnist1d_100pct_none/mkd_from16-tau16/seed1-76543210",
            "mnist1d_100pct_none/nokd/seed2-44556677",
        ]
    )
    trials = s.trials().set_index("trial_id")
    curves = s.curves()
    tags = {
        "val_acc": "acc/val",
        "test_acc": "acc/test",
        "tau_t": "tau/t",
        "tau_s": "tau/s",
        "lr": "lr",
        "train_loss": "loss/loss",
        "train_kd": "loss/kd",
        "meta_loss": "method/meta_loss",
        "epoch_seconds": "time/epoch_seconds",
        "samples_per_s": "time/samples_per_s",
    }
    for tid in ("a1b2c3d4e5f60718", "unit0123456789ab-fedcba9876543210", "0011223344556677"):
        row = trials.loc[tid].to_dict() | {"trial_id": tid}
        got, walls = _read_run(os.path.join(logdir, *run_name(row).split("/")))
        c = curves[curves["trial_id"] == tid].dropna(axis=1, how="all")
        want = {tags[k]: dict(zip(c["epoch"].astype(int), c[k])) for k in c.columns if k in tags}
        assert set(got) == set(want), tid  # meta_loss only in MKD's run, no NaN series elsewhere
        for t, series in want.items():
            assert sorted(got[t]) == sorted(series), (tid, t)
            for step, v in series.items():
                assert got[t][step] == pytest.approx(v, rel=1e-6), (tid, t, step)  # float32 in the event
        # wall time: the trial's start plus its epochs' seconds
        assert walls == pytest.approx({e: row["started_at"] + 1.5 * e for e in want["acc/val"]})
    # idempotent; a new trial adds one run only
    assert write_events(str(folder)) == 0
    s.add(_row("9999888877776666", "grid", 1, 4.0), _curve(3, 1))
    assert write_events(str(folder)) == 1
    assert len(_runs(logdir)) == 4
    assert not os.path.exists(folder / ".tensorboard-tmp")


def test_epochs_without_a_value_are_left_out(tmp_path):
    folder = tmp_path / "s"
    s = Store(str(folder))
    curve = _curve(3, 0)
    for r in curve[:2]:  # a trial that evaluated its last epoch only
        r["val_acc"] = r["test_acc"] = None
    s.add(_row("t1", "teacher", 0), curve)
    assert write_events(str(folder)) == 1
    (run,) = _runs(str(folder / "tensorboard"))
    got, _ = _read_run(os.path.join(str(folder / "tensorboard"), run))
    assert got["acc/test"] == {3: pytest.approx(0.46)} and sorted(got["loss/loss"]) == [1, 2, 3]
    assert all(np.isfinite(v) for series in got.values() for v in series.values())


def test_names_are_safe_path_components():
    assert safe("mnist1d(100%,none)") == "mnist1d_100pct_none"
    assert (
        safe("cifar100[train_size=8000](50%,weak,resnet56>resnet20)")
        == "cifar100_train_size=8000_50pct_weak_resnet56_resnet20"
    )
    assert safe("../x/y") == "x_y" and safe("///") == "_"
    row = {
        "trial_id": "abc",
        "setting_label": "a b",
        "method": "dts",
        "seed": 3.0,
        "tau_t_config": 2.0,
        "tau_s_config": 8.0,
    }
    assert run_name(row) == "a_b/dts-taut2-taus8/seed3-abc"


def test_cli_prints_where_and_how_and_rejects_a_folder_that_is_not_a_store(tmp_path, capsys):
    folder = tmp_path / "runs" / "synthetic"
    _store(folder)
    assert main(["tensorboard", str(folder)]) == 0
    out = capsys.readouterr().out
    logdir = os.path.join(str(folder), "tensorboard")
    assert f"wrote 3 new trial(s) to {logdir}" in out and f"tensorboard --logdir {logdir}" in out
    assert main(["tensorboard", str(folder)]) == 0
    assert "wrote 0 new trial(s)" in capsys.readouterr().out
    assert main(["tensorboard", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    assert main(["tensorboard", str(tmp_path / "foreign")]) == 2
    err = capsys.readouterr().err
    assert "not a results store" in err and "Traceback" not in err
