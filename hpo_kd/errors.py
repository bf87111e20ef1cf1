"""User-facing errors: the CLI prints their message (no traceback) and exits 2."""


class UserError(ValueError):
    """Bad input from the user: unknown name, value out of range, missing data."""


def check_range(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """Raise a UserError naming `name` and the allowed range unless lo <(=) value <(=) hi."""
    ok = value is not None and value == value  # rejects NaN
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise UserError(f"{name} = {value!r} is out of range; allowed: {left}{lo_s}, {hi_s}{right}")
    return value
