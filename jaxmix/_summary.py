"""Short summary reprs for jaxmix's result types.

A result holds arrays of every size (responsibilities ``(n, K)``, draws ``(C, S, K, d)``, ...);
its ``repr`` is a few lines with its key numbers instead, and a last line that names every
field (with an array's shape), so the arrays are one attribute away. :func:`summary_repr` builds
it; each result class says which numbers to show.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["describe", "num", "summary_repr"]

_WIDTH = 100


def num(value: Any, digits: int = 6) -> str:
    """A number for a summary: ``digits`` significant digits for a float, as is otherwise."""
    if value is None:
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return str(value)


def describe(value: Any) -> str:
    """What a field holds, in a few characters: an array's shape, a tuple's length, a type."""
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return ""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(shape, property):
        try:
            return str(tuple(int(s) for s in shape))
        except TypeError:
            return ""
    if hasattr(value, "_fields"):
        return type(value).__name__
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def summary_repr(obj: Any, lines: Callable[[], list[str]]) -> str:
    """The summary ``repr`` of a NamedTuple result.

    Args:
        obj: The result (a NamedTuple).
        lines: Returns the summary's lines (key numbers), the first one the headline. Called
            inside a guard: a result whose fields do not hold what the lines expect (a
            hand-made or partial one) still gets a repr, without the lines.

    Returns:
        ``"Name(headline)"``, the other lines indented, then ``fields: ...`` with every field
        (an array's shape after its name).
    """
    name = type(obj).__name__
    try:
        body = [str(line) for line in lines()]
    except Exception:  # a repr never fails: fall back to the field list
        body = []
    head = f"{name}({body[0]})" if body else f"{name}(...)"
    fields = []
    for field in getattr(obj, "_fields", ()):
        what = describe(getattr(obj, field, None))
        fields.append(f"{field} {what}" if what else field)
    tail = textwrap.wrap(
        "fields: " + ", ".join(fields),
        width=_WIDTH,
        initial_indent="  ",
        subsequent_indent="    ",
        break_on_hyphens=False,
    )
    return "\n".join([head, *("  " + line for line in body[1:]), *tail])
