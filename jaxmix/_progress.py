"""One progress bar for every compiled loop of jaxmix (EM, SVI, MCMC).

A compiled loop cannot print; it reports its position to the host with ``jax.debug.callback``
(:func:`report`), and :func:`progress_bar` shows those reports on a ``tqdm`` bar while its body
runs. Nothing is shown, and the loop compiles without callbacks, when progress is off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

__all__ = ["progress_bar", "report"]

_bar: Any = None


def _advance(count: Any, value: Any = None, label: str = "obj") -> None:
    if _bar is None:
        return
    count = int(np.max(count))
    if count > _bar.n:
        _bar.update(count - _bar.n)
        if value is not None:
            _bar.set_postfix({label: f"{float(np.max(value)):.6g}"}, refresh=False)


def report(count: Any, value: Any = None, *, label: str = "obj") -> None:
    """From inside a compiled loop: move the bar to ``count`` (the largest over a batch), showing
    ``value`` (the largest over a batch) as ``label``."""
    if value is None:
        jax.debug.callback(lambda c: _advance(c), count)
    else:
        jax.debug.callback(lambda c, v: _advance(c, v, label), count, value)


@contextlib.contextmanager
def progress_bar(
    active: bool, description: str, total: int | None = None, unit: str = "it"
) -> Iterator[None]:
    """Show a tqdm bar while the body runs (if ``active``), fed by :func:`report`.

    Args:
        active: Whether to show anything.
        description: The bar's label.
        total: Its length, or ``None`` for a loop that stops on its own criterion.
        unit: The unit of ``count``.
    """
    global _bar
    if not active:
        yield
        return
    from tqdm.auto import tqdm

    _bar = tqdm(desc=description, total=total, unit=unit)
    try:
        yield
    finally:
        _bar.close()
        _bar = None
