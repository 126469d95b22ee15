"""One progress display for every long loop of jaxmix (EM, SVI, MCMC, model selection).

A compiled loop cannot print; it reports its position to the host with ``jax.debug.callback``
(:func:`report`), and :func:`progress_bar` shows those reports while its body runs. A host loop
(:func:`jaxmix.select_k` over its candidates) calls :func:`advance` directly. Nothing is shown,
and the loop compiles without callbacks, when progress is off.

Where it is shown:

* on a terminal (or in a Jupyter kernel) a ``tqdm`` bar that redraws itself in place;
* anywhere else (stderr redirected to a log file, a pipe, a test's capture) whole lines, never
  a carriage return: one line at most every :data:`LINE_INTERVAL` seconds while the loop runs,
  and a final line when it ends (``"EM K=3 x5: 46 it, obj=-3006.38, 0.84 s"``).

Batched restarts report one value each (``key`` = the restart): the display shows the best of
their latest values, so the objective shown is the best restart's, never whichever restart
happened to report first.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import jax
import numpy as np

__all__ = ["LINE_INTERVAL", "PlainProgress", "advance", "interactive", "progress_bar", "report"]

#: Without a terminal, a progress line is written at most this often (seconds), plus the last.
LINE_INTERVAL = 10.0

_bar: Any = None
_label = "obj"
_latest: dict[int, float] = {}


class PlainProgress:
    """A progress display of whole lines (for a log file): the part of tqdm's interface that
    :func:`progress_bar` uses (``n``, ``update``, ``set_postfix``, ``close``)."""

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        unit: str = "it",
        file: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.interval = LINE_INTERVAL if interval is None else interval
        self.file = file
        self.n = 0
        self.postfix: dict[str, str] = {}
        self.start = self.last = time.perf_counter()

    def line(self) -> str:
        """The current state as one line, without its newline."""
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {count} {self.unit}{extra}, {time.perf_counter() - self.start:.2f} s"

    def _write(self) -> None:
        out = self.file if self.file is not None else sys.stderr
        out.write(self.line() + "\n")
        out.flush()
        self.last = time.perf_counter()

    def update(self, k: int = 1) -> None:
        self.n += k
        if time.perf_counter() - self.last >= self.interval:
            self._write()

    def set_postfix(self, postfix: dict[str, str], refresh: bool = True) -> None:
        self.postfix = dict(postfix)

    def close(self) -> None:
        self._write()


def interactive(stream: Any = None) -> bool:
    """Whether a bar that redraws itself can be shown: ``stream`` (stderr) is a terminal, or a
    Jupyter kernel runs (its widgets need no terminal)."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):
        tty = False
    return tty or "ipykernel" in sys.modules


def _set_label(label: str) -> None:
    global _label
    _label = label


def advance(count: Any, value: Any = None, key: Any = 0) -> None:
    """Move the display to ``count`` (it never moves back) and record ``value`` as the latest of
    ``key`` (a restart); the display shows the best (largest) latest value. Called on the host,
    directly or from :func:`report`'s callback."""
    if _bar is None:
        return
    count = int(np.max(count))
    if value is not None:
        value = float(np.max(value))
        if math.isfinite(value):
            _latest[int(np.max(key))] = value
    if count > _bar.n:
        _bar.update(count - _bar.n)
    if _latest:
        _bar.set_postfix({_label: f"{max(_latest.values()):.6g}"}, refresh=False)


def report(count: Any, value: Any = None, *, key: Any = None, label: str | None = None) -> None:
    """From inside a compiled loop: move the display to ``count``, recording ``value`` for
    ``key`` (the restart or chain reporting; batched loops call the callback once per batch
    element). ``label`` names the value (default: the one given to :func:`progress_bar`)."""

    def host(*args: Any) -> None:  # one callback: the label (if any) and the step together
        if label is not None:
            _set_label(label)
        advance(*args)

    args = (count,) if value is None else (count, value) if key is None else (count, value, key)
    jax.debug.callback(host, *args)


@contextlib.contextmanager
def progress_bar(
    active: bool,
    description: str,
    total: int | None = None,
    unit: str = "it",
    label: str = "obj",
) -> Iterator[None]:
    """Show progress while the body runs (if ``active``), fed by :func:`report` and
    :func:`advance`: a tqdm bar on a terminal, whole lines otherwise (module docstring).

    Args:
        active: Whether to show anything.
        description: The display's label.
        total: Its length, or ``None`` for a loop that stops on its own criterion.
        unit: The unit of ``count``.
        label: The name of the value shown (``"obj"``, ``"loss"``, ...).
    """
    global _bar, _label
    if not active or _bar is not None:  # off, or inside a loop that already shows progress
        yield
        return
    if interactive():
        from tqdm.auto import tqdm

        _bar = tqdm(desc=description, total=total, unit=unit)
    else:
        _bar = PlainProgress(description, total=total, unit=unit)
    _label = label
    _latest.clear()
    try:
        yield
    finally:
        _bar.close()
        _bar = None
        _latest.clear()


#: MCMC loops report their progress every this many iterations of a chain (and at the last).
CHAIN_REPORT_EVERY = 10


def report_chain_step(done: Any, chain: Any, total: int, num_chains: int, vectorized: bool) -> None:
    """From inside a compiled MCMC loop, after iteration ``done`` (1-based) of chain ``chain``:
    every :data:`CHAIN_REPORT_EVERY` iterations and at the last of ``total``, move the display to
    the iterations done by all chains (sequential chains run one after the other, vectorized
    ones in lockstep)."""
    count = done * num_chains if vectorized else chain * total + done
    jax.lax.cond(
        (done % CHAIN_REPORT_EVERY == 0) | (done == total),
        lambda: report(count),
        lambda: None,
    )
