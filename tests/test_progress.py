"""The study's progress lines (no Ray needed): one line per finished trial, the weak-teacher warning."""
from hpo_kd.tune import Progress


def _row(method, val, seed=0, setting="s1"):
    return {"method": method, "val_acc": val, "test_acc": val, "status": "ok", "setting": setting,
            "setting_label": "digits(100%,none)", "seed": seed, "seconds": 1.0, "tau_t": None, "tau_s": None}


def test_a_teacher_below_its_no_kd_student_is_warned_once(capsys):
    p = Progress(total=4, concurrency=2)
    p.finished(_row("teacher", 0.40))
    p.finished(_row("nokd", 0.35, seed=0))  # below the teacher: no warning
    assert "warning" not in capsys.readouterr().err
    p.finished(_row("nokd", 0.90, seed=1))
    p.finished(_row("nokd", 0.95, seed=2))
    err = capsys.readouterr().err
    assert err.count("warning: on digits(100%,none) the teacher's val accuracy (40.00 %") == 1
    assert "no-KD student's (90.00 %, seed 1)" in err
    assert [ln.split("]")[0] for ln in err.splitlines() if ln.startswith("[")] == ["[3/4", "[4/4"]


def test_teachers_of_an_earlier_run_count():
    p = Progress(total=1, concurrency=1)
    p.know_teachers([_row("teacher", 0.5), _row("teacher", float("nan")), _row("nokd", 0.1)])
    assert p.teacher_val == {"s1": [0.5]}
    assert p.weak_teacher(_row("nokd", 0.6)) is not None
    assert p.weak_teacher(_row("nokd", 0.7)) is None  # once per setting
    assert p.weak_teacher(_row("nokd", 0.7, setting="s2")) is None  # no teacher known there
