"""Trials that two studies share. Two studies whose settings, methods and seeds coincide run the
same trials (a trial id names its setting, method, configuration and seed), and a results store
may hold the other's trials (the comparison and transfer studies share their grid and no-KD
trials). A verdict that rests on shared trials is the same evidence in both reports, so a report
names the trials it shares with each store given (`hpo-kd report runs/A --overlap runs/B`)."""

from __future__ import annotations

from typing import Dict, List

import pandas as pd

from .selection import ok


def overlap(trials: pd.DataFrame, stores: List[str]) -> List[Dict]:
    """Per other store: its study, how many of this report's finished trials it also holds (by
    trial id) out of how many, and those per (setting label, method)."""
    from . import load_store

    mine = ok(trials[trials["method"] != "teacher"])
    out = []
    for store in stores:
        other, _ = load_store(store)
        hit = mine[mine["trial_id"].isin(set(other["trial_id"]))]
        by = hit.groupby(["setting_label", "method"], sort=True).size()
        out.append(
            dict(
                store=store,
                study=other["study"].iloc[0],
                shared=int(len(hit)),
                total=int(len(mine)),
                by=[(label, method, int(n)) for (label, method), n in by.items()],
            )
        )
    return out
