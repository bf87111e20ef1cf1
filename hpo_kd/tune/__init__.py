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

from .progress import Progress
from .runner import Runner

__all__ = ["Progress", "Runner"]
