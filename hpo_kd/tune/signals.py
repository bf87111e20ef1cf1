"""Ctrl-C during a run: the study stops at once, or at the next finished trial."""

from __future__ import annotations

import contextlib
import signal
import threading

# Ctrl-C during a run, remembered. The handler raises KeyboardInterrupt as Python's own does, and
# also sets this flag, so that if the exception is swallowed inside the driver's libraries the
# driver still stops at the next finished trial, or when the Tuner returns. (Once in a full test
# run a Ctrl-C did not stop the study: it finished every trial and exited 0. The cause was not
# found; a swallowed KeyboardInterrupt fits what was seen.) Module-level: Tune pickles its callbacks.
_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def ctrl_c(stop_trials: bool = False):
    """Ctrl-C raises KeyboardInterrupt and is remembered. With `stop_trials` (a Ray that outlives
    the run), a KeyboardInterrupt out of the block removes the placement groups created in it, and
    so stops their trials: Ray Tune releases its trials' resources when the Tuner ends by an
    Exception, not by a KeyboardInterrupt, and the next run in that Ray would wait for them forever."""
    main = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
    _INTERRUPTED.clear()
    before = _placement_groups() if stop_trials else set()
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(signum, frame):
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    if main:
        signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    except KeyboardInterrupt:
        if stop_trials:
            _remove(_placement_groups() - before)
        raise
    finally:
        if main:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _placement_groups() -> set:
    """The ids of the Ray placement groups not removed (each Tune trial runs in one)."""
    from ray.util import placement_group_table

    return {k for k, v in placement_group_table().items() if v["state"] != "REMOVED"}


def _remove(ids: set) -> None:
    """Remove placement groups: Ray kills the actors and tasks that run in them."""
    from ray._raylet import PlacementGroupID
    from ray.util import remove_placement_group
    from ray.util.placement_group import PlacementGroup

    for pg in ids:
        try:
            remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(pg)))
        except Exception:  # removed meanwhile
            pass


def stop_if_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt
