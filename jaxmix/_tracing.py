"""How often each compiled program of jaxmix has been traced (read by :mod:`jaxmix.testing`).

A jitted function calls :func:`note` in its body, which runs only while JAX traces it: the count
goes up on every (re)compilation and stays put when a compiled program is reused.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["note", "snapshot"]

_counts: Counter[str] = Counter()


def note(name: str) -> None:
    """Count one trace of the program ``name``."""
    _counts[name] += 1


def snapshot() -> dict[str, int]:
    """The counts so far."""
    return dict(_counts)
