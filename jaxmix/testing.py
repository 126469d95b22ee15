"""Hooks for testing code that uses jaxmix.

:func:`count_traces` says how many times jaxmix's compiled programs were traced (compiled) while
a block ran: a fit repeated on same-shaped data should not compile again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from jaxmix._tracing import snapshot

__all__ = ["TraceCounts", "count_traces"]


class TraceCounts(dict):
    """Traces per program during a :func:`count_traces` block (``"em"``, ``"kmeans"``, ``"svi"``,
    ``"mcmc"``, ...); a program not traced reads 0."""

    def __missing__(self, key: str) -> int:
        return 0

    @property
    def total(self) -> int:
        """Traces of every program."""
        return sum(self.values())


@contextlib.contextmanager
def count_traces() -> Iterator[TraceCounts]:
    """Count the traces of jaxmix's compiled programs while the block runs.

    The counts are filled in when the block ends.

    Example:
        >>> import numpy as np, jaxmix
        >>> from jaxmix.testing import count_traces
        >>> X = np.array([[1.0, 2.0], [1.2, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> _ = jaxmix.fit_em(X, 2, min_var=0.01)
        >>> with count_traces() as traces:
        ...     _ = jaxmix.fit_em(X + 1.0, 2, min_var=0.01)
        >>> traces["em"]
        0
    """
    counts = TraceCounts()
    before = snapshot()
    try:
        yield counts
    finally:
        after = snapshot()
        counts.update({k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)})
