"""The study's progress line (no Ray needed): throttled, trials done / total, ETA, the best student
by val per setting; failures and the weak-teacher warning as they happen."""

from hpo_kd.tune import Progress


def _row(method, val, seed=0, setting="s1", label="digits(100%,none)", **kw):
    return dict(
        {
            "method": method,
            "val_acc": val,
            "test_acc": val,
            "status": "ok",
            "setting": setting,
            "setting_label": label,
            "seed": seed,
            "seconds": 1.0,
            "tau_t": None,
            "tau_s": None,
        },
        **kw,
    )


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _lines(err):
    return [ln for ln in err.splitlines() if ln.startswith("[")]


def test_a_teacher_below_its_no_kd_student_is_warned_once(capsys):
    p = Progress(total=4, concurrency=2, clock=Clock())
    p.finished(_row("teacher", 0.40))
    p.finished(_row("nokd", 0.35, seed=0))  # below the teacher: no warning
    assert "warning" not in capsys.readouterr().err
    p.finished(_row("nokd", 0.90, seed=1))
    p.finished(_row("nokd", 0.95, seed=2))
    err = capsys.readouterr().err
    assert err.count("warning: on digits(100%,none) the teacher's val accuracy (40.00 %") == 1
    assert "no-KD student's (90.00 %, seed 1)" in err
    # no time passed: only the last line (the first one came with the teacher)
    assert [ln.split("]")[0] for ln in _lines(err)] == ["[4/4"]


def test_the_progress_line_is_throttled_and_shows_eta_and_the_best_by_val_per_setting(capsys):
    clock = Clock()
    p = Progress(total=6, concurrency=2, every=10.0, clock=clock)
    clock.now = 5.0
    p.finished(_row("teacher", 0.99))  # the first line at once: the run is alive
    clock.now = 6.0
    p.finished(_row("grid", 0.80, tau_t_config=4.0, tau_s_config=4.0))
    clock.now = 9.0
    p.finished(_row("optuna", 0.70, tau_t_config=2.0, tau_s_config=2.0))
    assert [ln.split("]")[0] for ln in _lines(capsys.readouterr().err)] == ["[1/6"]
    clock.now = 15.0  # 10 s after the last line
    p.finished(_row("nokd", 0.60, setting="s2", label="mnist1d(25%,none)"))
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("[4/6] 67%, elapsed 0:15, ETA 0:08 | best by val: ")
    assert "digits(100%,none) grid seed=0 tau_t=4 tau_s=4 val=0.8000 test=0.8000" in line
    assert "mnist1d(25%,none) nokd seed=0 val=0.6000" in line
    assert "teacher" not in line  # the teacher is not a result
    clock.now = 16.0
    p.finished(_row("mkd", None, status="failed", error="boom"))  # a failure: said at once
    err = capsys.readouterr().err
    assert "trial failed: digits(100%,none) mkd seed=0: boom" in err and not _lines(err)
    clock.now = 17.0
    p.finished(_row("dts", 0.90))  # the last trial: always a line
    (line,) = _lines(capsys.readouterr().err)
    assert (
        line.startswith("[6/6] 100%, 1 failed, elapsed 0:17, ETA 0:00")
        and "digits(100%,none) dts seed=0 val=0.9000" in line
    )


def test_teachers_of_an_earlier_run_count():
    p = Progress(total=1, concurrency=1)
    p.know_teachers([_row("teacher", 0.5), _row("teacher", float("nan")), _row("nokd", 0.1)])
    assert p.teacher_val == {"s1": [0.5]}
    assert p.weak_teacher(_row("nokd", 0.6)) is not None
    assert p.weak_teacher(_row("nokd", 0.7)) is None  # once per setting
    assert p.weak_teacher(_row("nokd", 0.7, setting="s2")) is None  # no teacher known there
