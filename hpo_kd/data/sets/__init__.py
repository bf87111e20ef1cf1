"""One module per data set: each registers its reader with `@DATASETS.register("name")` and
`@defaults(...)` (hpo_kd.data.core). Every module in this package is imported, so a new data set is
a new file here; `digits.py` is the shortest example."""

import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
