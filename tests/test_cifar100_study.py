"""studies/cifar100.toml: its plan, its GPU-hour estimate, and a tiny version of it run end to end
through Ray and the report on a fake CIFAR-100 root (no GPU, no download)."""

import os
import re

import pandas as pd
import pytest

from hpo_kd import estimate
from hpo_kd.cli import main
from hpo_kd.data import fake
from hpo_kd.study import StudyError, load_study

STUDY = os.path.join(os.path.dirname(__file__), "..", "studies", "cifar100.toml")
PAIRS = [
    ("resnet56", "resnet20"),
    ("resnet110", "resnet32"),
    ("resnet32x4", "resnet8x4"),
    ("wrn_40_2", "wrn_16_2"),
    ("vgg13", "vgg8"),
    ("vgg13", "mobilenetv2"),
    ("resnet32x4", "shufflenetv1"),
    ("resnet32x4", "shufflenetv2"),
]


def _copy(tmp_path, text=None, **replace):
    """The shipped study, written beside a `data` folder of tmp_path (root = "../data" resolves there)."""
    text = text or open(STUDY).read()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    d = tmp_path / "studies"
    d.mkdir(exist_ok=True)
    (d / "cifar100.toml").write_text(text)
    return str(d / "cifar100.toml")


def test_the_shipped_study_plans_every_pair_with_the_recipe(tmp_path, capsys):
    fake.write_cifar100(str(tmp_path / "data"), per_class_train=2)
    s = load_study(_copy(tmp_path))
    assert sorted((x.teacher, x.student) for x in s.settings) == sorted(PAIRS)
    assert s.resources["gpus_per_trial"] == 0.25 and s.seeds == [0, 1, 2]
    assert set(s.methods) == {"grid", "optuna", "mkd", "dts", "ctkd", "nokd"}
    for x in s.settings:
        cfg = s.base_config(x, 0)
        assert (cfg["epochs"], cfg["lr_schedule"], cfg["batch_size"], cfg["weight_decay"], cfg["augment"]) == (
            240,
            "multistep",
            64,
            5e-4,
            "weak",
        )
        small = x.student.startswith(("mobilenet", "shufflenet"))
        assert cfg["lr"] == (0.01 if small else 0.05) and cfg["teacher_lr"] == 0.05
    assert main(["run", _copy(tmp_path), "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    hours = float(re.search(r"GPU-hours \(estimate\): ([\d,.]+)", out).group(1).replace(",", ""))
    assert 50 < hours < 5000  # 8 pairs x 3 seeds x ~20 trials of 240 epochs at 10 TFLOP/s
    assert main(["run", _copy(tmp_path), "--dry-run", "--gpu-tflops", "20", "--runs-dir", str(tmp_path / "r")]) == 0
    half = float(re.search(r"GPU-hours \(estimate\): ([\d,.]+)", capsys.readouterr().out).group(1).replace(",", ""))
    assert half == pytest.approx(hours / 2, rel=0.01)


def test_the_estimate_counts_what_a_trial_computes():
    # resnet20 on 32x32: ~41 M multiply-adds (the CIFAR KD tables' 0.04 GFLOPs)
    assert estimate.forward_macs("resnet20", (3, 32, 32), 100) == pytest.approx(41e6, rel=0.05)
    assert estimate.forward_macs("resnet32x4", (3, 32, 32), 100) == pytest.approx(1.08e9, rel=0.05)


def test_published_figures_are_checked(tmp_path):
    fake.write_cifar100(str(tmp_path / "data"), per_class_train=2)
    with pytest.raises(StudyError, match=r"report.published\[0\].source: 'nope' is not in \[report.sources\]"):
        load_study(
            _copy(
                tmp_path,
                **{'source = "crd"\nfigures = {teacher = 72.34': 'source = "nope"\nfigures = {teacher = 72.34'},
            )
        )
    with pytest.raises(StudyError, match=r"figures.vanilla: unknown figure; allowed: .*kd.*nokd.*teacher"):
        load_study(
            _copy(
                tmp_path,
                **{"{teacher = 72.34, nokd = 69.06, kd = 70.66}": "{teacher = 72.34, nokd = 69.06, vanilla = 70.66}"},
            )
        )
    with pytest.raises(StudyError, match=r"report.published\[0\].teacher: .*a name"):
        load_study(
            _copy(
                tmp_path,
                **{
                    'teacher = "resnet56"\nstudent = "resnet20"\nsource = "crd"': (
                        'teacher = 56\nstudent = "resnet20"\nsource = "crd"'
                    )
                },
            )
        )
    with pytest.raises(StudyError, match=r"settings\[1\].train.lr"):
        load_study(_copy(tmp_path, **{"train = {lr = 0.01}": "train = {lr = -1}"}))


def _native_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@pytest.mark.slow
def test_a_tiny_cifar100_study_runs_through_ray_and_reports_beside_the_papers(shared_ray, tmp_path):
    """The shipped study cut to what CI's two cores can run in about a minute: its resnet56 ->
    resnet20 pair, one epoch, two seeds, the grid at tau = 4 (the papers' KD), CTKD and no-KD, on a
    fake CIFAR-100 root, through Ray (bf16 autocast on the CPU, the crop-and-flip augmentation) and
    the report, which puts the published figures beside the measurements. One CPU (one torch
    thread) per trial: a trial's two threads spin-wait while the other pytest worker holds a core
    (3 min 43 s against 1 min beside a busy loop, on a 2-core AMD EPYC). (By hand, every pair of
    the study ran one bf16 epoch on the fake root; see the README.) On a CPU without native bf16
    (oneDNN emulates it: this test took ~10 min on a 2-core AMD EPYC) the study runs in fp32;
    tests/test_precision.py covers bf16 on every CPU."""
    fake.write_cifar100(str(tmp_path / "data"), per_class_train=12)  # the fewest that split 100 classes 4 ways
    text = open(STUDY).read()
    text = re.sub(r'pairs = \[\["resnet56".*?\]\]\n', 'pairs = [["resnet56", "resnet20"]]\n', text, flags=re.S)
    text = re.sub(
        r'\[\[settings\]\]\ndataset = "cifar100"\nroot = "../data"\naugment = "weak"\npairs = \[\["vgg13".*?'
        r"train = \{lr = 0.01\}[^\n]*\n",
        "",
        text,
        flags=re.S,
    )
    text = re.sub(
        r"\[methods.grid\].*?\[methods.nokd\]",
        "[methods.grid]\ntemperatures = [4]\n[methods.ctkd]\n[methods.nokd]",
        text,
        flags=re.S,
    )
    path = _copy(
        tmp_path,
        text,
        **{
            "epochs = 240": "epochs = 1",  # and teacher_epochs
            "seeds = [0, 1, 2]": "seeds = [0, 1]",
            "gpus_per_trial = 0.25": "gpus_per_trial = 0",
            "cpus_per_trial = 2": "cpus_per_trial = 1",
            **({} if _native_bf16() else {'precision = "bf16"': 'precision = "fp32"'}),
        },
    )
    s = load_study(path)
    assert [(x.teacher, x.student) for x in s.settings] == [("resnet56", "resnet20")]
    assert set(s.methods) == {"grid", "ctkd", "nokd"}
    runs, reports = str(tmp_path / "runs"), str(tmp_path / "reports")
    assert main(["run", path, "--runs-dir", runs]) == 0
    assert main(["report", os.path.join(runs, "cifar100"), "--out", reports]) == 0
    trials = pd.read_parquet(os.path.join(runs, "cifar100", "trials.parquet"))
    assert (trials["status"] == "ok").all() and len(trials) == 1 + 2 * 3
    md = open(os.path.join(reports, "cifar100", "report.md")).read()
    assert "## Beside the published figures" in md and "Tian et al." in md and "zhengli97/CTKD" in md
    pub = pd.read_csv(os.path.join(reports, "cifar100", "published.csv"))
    assert sorted(pub["figure"]) == ["ctkd", "kd", "nokd", "teacher"]
    assert dict(zip(pub["figure"], pub["published"])) == {"teacher": 72.34, "nokd": 69.06, "kd": 70.66, "ctkd": 71.19}
    assert dict(zip(pub["figure"], pub["n"])) == {"teacher": 1, "nokd": 2, "kd": 2, "ctkd": 2}
    assert pub["measured"].between(0, 100).all()
