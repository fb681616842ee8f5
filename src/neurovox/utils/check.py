"""Small validators for public entry points.

Each raises `TypeError` or a `neurovox` error (a `ValueError`) whose message names the
parameter, what was allowed, what was received and, where it helps, how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from neurovox.errors import ConfigError, DataError


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' for the closest candidate, or ''."""
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.5)
    return f' Did you mean "{close[0]}"?' if close else ""


def validate_type(value: Any, types: type | tuple[type, ...], item_name: str) -> Any:
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise TypeError(f"{item_name} must be {names}, got {type(value).__name__} ({value!r:.60}).")
    return value


def check_option(name: str, value: Any, allowed: Sequence[Any], error: type[Exception] = ConfigError) -> Any:
    if value not in allowed:
        allowed_txt = ", ".join(repr(a) for a in allowed)
        raise error(
            f"Invalid {name}: allowed values are {allowed_txt}, but got {value!r}."
            + suggest(str(value), [str(a) for a in allowed])
        )
    return value


def check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    inclusive: bool = True,
    error: type[Exception] = ConfigError,
) -> float:
    ok_low = low is None or (value >= low if inclusive else value > low)
    ok_high = high is None or (value <= high if inclusive else value < high)
    if not (ok_low and ok_high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        brackets = "[]" if inclusive else "()"
        raise error(f"{name} must be in {brackets[0]}{lo}, {hi}{brackets[1]}, got {value!r}.")
    return value


def check_shape(name: str, array: Any, shape: Sequence[int | None], *, where: str = "") -> np.ndarray | Any:
    """Check `array.shape` against `shape`, where None matches any length.

    Example: ``check_shape("neural", x, (None, 64))`` accepts (n_samples, 64).
    """
    got = tuple(getattr(array, "shape", ()))
    want = tuple(shape)
    ok = len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got))
    if not ok:
        want_txt = "(" + ", ".join("any" if w is None else str(w) for w in want) + ")"
        loc = f" in {where}" if where else ""
        raise DataError(f"{name}{loc} must have shape {want_txt}, got {got}.")
    return array


def check_finite(name: str, array: np.ndarray, *, axis_names: tuple[str, str] = ("sample", "channel"),
                 where: str = "", hint: str = "") -> np.ndarray:
    """Raise DataError naming the first non-finite entries (row and column) of a 1-D or 2-D array."""
    finite = np.isfinite(array)
    if finite.all():
        return array
    bad = np.argwhere(~finite)
    n_bad = len(bad)
    first = bad[0]
    if array.ndim == 2:
        cols = sorted(set(bad[:, 1].tolist()))
        pos = f"first at {axis_names[0]} {first[0]}, {axis_names[1]}s {cols[:10]}{'...' if len(cols) > 10 else ''}"
    else:
        pos = f"first at {axis_names[0]} {first[0]}"
    loc = f" in {where}" if where else ""
    raise DataError(f"{name}{loc} contains {n_bad} NaN/Inf values ({pos}).{(' ' + hint) if hint else ''}")
