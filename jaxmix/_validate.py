"""Every argument check of jaxmix, with one exception policy.

* ``TypeError``: the value is of the wrong kind (a string where a number is expected, a float
  where an integer is, ``True`` for a count, an object that is not a result).
* ``ValueError``: the kind is right but the value is not allowed (out of range, wrong shape, not
  one of the named choices, not finite).

Every message names the argument and shows the value it got.

Data that fit but may mislead get a warning, a subclass of :class:`DataWarning`: variances on
a floor as wide as the data (:class:`VarianceFloorWarning`), an emptied component
(:class:`EmptyComponentWarning`), columns whose scales differ by orders of magnitude under a
family with one variance for all columns (:class:`ColumnScaleWarning`), zeros read as missing
in data that are not ratings (:class:`ZeroAsMissingWarning`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ColumnScaleWarning",
    "DataWarning",
    "EmptyComponentWarning",
    "VarianceFloorWarning",
    "ZeroAsMissingWarning",
    "check_choice",
    "check_int",
    "check_n_components",
    "check_nonneg_float",
    "check_nonneg_int",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
    "check_seed",
    "is_number",
]


class DataWarning(UserWarning):
    """The fit ran, but the data's scale or shape may make it misleading (base class)."""


class VarianceFloorWarning(DataWarning):
    """Most fitted variances sit on a floor ``min_var`` as wide as the data's own spread: the
    floor, not the data, decides them (pass ``min_var=None`` or a smaller one)."""


class EmptyComponentWarning(DataWarning):
    """A component's weight is about zero: it explains no row (fewer components would do)."""


class ColumnScaleWarning(DataWarning):
    """The columns' standard deviations differ by orders of magnitude while the covariance
    family gives every column one variance (the widest columns decide the clusters)."""


class ZeroAsMissingWarning(DataWarning):
    """``load_ratings(missing=0)`` read zeros as missing in columns whose other values go below
    1: the zeros may be real values (pass ``missing=None``)."""


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """An integer (``bool`` refused) at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        if minimum == 1:
            raise ValueError(f"{name} must be at least 1; got {value}")
        if minimum == 0:
            raise ValueError(f"{name} must be non-negative; got {value}")
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """A strictly positive integer."""
    return check_int(value, name, 1)


def check_nonneg_int(value: Any, name: str) -> int:
    """A non-negative integer."""
    return check_int(value, name, 0)


def check_seed(seed: Any) -> int:
    """A seed: a non-negative integer."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer; got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative; got {seed}")
    return int(seed)


def _real(value: Any, name: str, what: str = "a real number") -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}; got {value!r}")
    return float(value)


def check_nonneg_float(value: Any, name: str) -> float:
    """A finite, non-negative real number."""
    value = _real(value, name)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and non-negative; got {value}")
    return value


def check_positive_float(value: Any, name: str) -> float:
    """A finite, strictly positive real number."""
    value = _real(value, name, "a positive number")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and positive; got {value}")
    return value


def check_probability(value: Any, name: str) -> float:
    """A real number strictly between 0 and 1."""
    value = _real(value, name)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1); got {value}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """One of ``choices`` (compared with ``==``; unhashable values are simply not among them)."""
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")
    return value


def check_n_components(K: Any, n_rows: int) -> int:
    """The number of components ``K``: an integer in ``[1, n_rows]``."""
    if isinstance(K, (bool, np.bool_)) or not isinstance(K, numbers.Integral):
        raise TypeError(f"K (number of components) must be an integer; got {K!r}")
    K = int(K)
    if K < 1:
        raise ValueError(f"K (number of components) must be at least 1; got {K}")
    if K > n_rows:
        raise ValueError(f"K (number of components) = {K} exceeds the number of rows, {n_rows}")
    return K


def is_number(text: str) -> bool:
    """Whether ``float(text)`` reads ``text`` (``"nan"`` and ``"inf"`` included)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
