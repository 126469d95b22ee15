"""What the layouts derive from a :class:`~jaxmix.SparseRatings`, built once and reused.

A :class:`~jaxmix.SparseRatings` is immutable (its arrays are read-only and its own), so what a
layout computes from it alone can be kept with it and reused: its column summary and row counts
(host), the chunked, standardised triples on the device with their row maps
(:meth:`TriplesLayout.device <jaxmix.data.triples.TriplesLayout.device>`: 2-2.5 s of host work
and transfers at 10 million ratings on a 2-core machine), the k-means++ seeding's copy of the
triples (:func:`jaxmix.inference.init.seed_arrays`, about 1 s there) and its result for a given
``K``, seed, number of restarts and floor (:func:`~jaxmix.inference.init.kmeans_plus_plus_batched`:
``R x K x d`` numbers). A later :func:`~jaxmix.fit_em`, :func:`~jaxmix.complete`,
:func:`~jaxmix.responsibilities` or :func:`~jaxmix.predictive_summary` on the same matrix then
skips that work.

Everything is keyed by what it depends on besides the matrix (the standardisation, the float
dtype, the chunk size, ``dense_row_density``, the mesh, JAX's default device, the seed, ...), so
a different option builds anew and a stale entry is never served. Memory is bounded: every entry
lives as long as its matrix (a weak reference: ``del S`` frees it), and each matrix keeps at most
:attr:`LayoutCache.max_layouts` device layouts (and as many seeding copies), the least recently
used dropped first. :data:`layout_cache` is the one instance; ``layout_cache.clear(S)`` frees a
matrix's device copies at once, ``layout_cache.max_layouts = 0`` turns the device copies off.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, OrderedDict
from typing import Any

__all__ = ["HOST_KINDS", "LayoutCache", "layout_cache"]

#: Kinds of entries held on the host, small (``O(n + d)`` floats, or a fit's starting points):
#: kept whatever :attr:`LayoutCache.max_layouts` says, at most this many of each kind.
HOST_KINDS = {"summary": 1, "row_counts": 1, "row_offsets": 1, "start": 4}


class LayoutCache:
    """Per-matrix memo of what the layouts build from a :class:`~jaxmix.SparseRatings`.

    Attributes:
        max_layouts: Device-side entries (chunked layouts, seeding copies) kept per matrix and
            kind, the least recently used dropped first; ``0`` keeps none (every call builds
            anew, as before the cache).
        builds: How many entries of each kind were built (for tests and benchmarks).
        hits: How many were served from the cache.
    """

    def __init__(self, max_layouts: int = 2) -> None:
        self.max_layouts = max_layouts
        self.builds: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self._store: weakref.WeakKeyDictionary[Any, dict[str, OrderedDict]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LayoutCache(max_layouts={self.max_layouts}, matrices={len(self._store)}, "
            f"entries={self.size()})"
        )

    def _limit(self, kind: str) -> int:
        return HOST_KINDS.get(kind, max(int(self.max_layouts), 0))

    def get(self, owner: Any, kind: str, key: Any, build: Any) -> Any:
        """The entry ``(kind, key)`` of ``owner`` (a :class:`~jaxmix.SparseRatings`), built by
        ``build()`` the first time (and kept within the kind's limit).

        Args:
            owner: The immutable object the entry derives from (weakly referenced).
            kind: What the entry is (``"summary"``, ``"layout"``, ``"seed"``, ``"start"``, ...).
            key: Everything besides ``owner`` the entry depends on (hashable).
            build: A function of no argument that builds the entry; it must not keep ``owner``.
        """
        limit = self._limit(kind)
        if limit <= 0:
            self.builds[kind] += 1
            return build()
        with self._lock:
            kinds = self._store.get(owner)
            entries = None if kinds is None else kinds.get(kind)
            if entries is not None and key in entries:
                entries.move_to_end(key)
                self.hits[kind] += 1
                return entries[key]
        value = build()
        self.builds[kind] += 1
        with self._lock:
            kinds = self._store.setdefault(owner, {})
            entries = kinds.setdefault(kind, OrderedDict())
            entries[key] = value
            entries.move_to_end(key)
            while len(entries) > limit:
                entries.popitem(last=False)
        return value

    def clear(self, owner: Any = None) -> None:
        """Drop every entry of ``owner`` (of every matrix when ``None``)."""
        with self._lock:
            if owner is None:
                self._store.clear()
            else:
                self._store.pop(owner, None)

    def size(self, owner: Any = None, kind: str | None = None) -> int:
        """Entries held (of ``owner`` and of ``kind`` where given)."""
        with self._lock:
            owners = list(self._store.values()) if owner is None else [self._store.get(owner, {})]
            return sum(
                len(entries)
                for kinds in owners
                for name, entries in kinds.items()
                if kind is None or name == kind
            )


#: The cache every layout of a :class:`~jaxmix.SparseRatings` uses.
layout_cache = LayoutCache()
