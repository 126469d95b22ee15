"""Sample data shipped with the package, for first steps and for the README's examples.

Two files hold the same small ratings matrix (240 users x 30 movies, 1 to 5 stars, 61 % of the
entries missing), simulated by :func:`jaxmix.simulate_ratings` from a planted mixture of three
types of users:

* ``"ratings.txt"``: the course's dense text format (:func:`jaxmix.load_ratings`; ``0`` = not
  rated), one line per user;
* ``"ratings.csv"``: the observed entries as MovieLens-style triples with a header
  (``userId,movieId,rating``; :func:`jaxmix.load_sparse_ratings`), with identifiers that are not
  positions: user ``1001 + u`` and movie ``100 + 7 l`` for row ``u`` and column ``l`` of the
  dense file.
"""

from __future__ import annotations

import os
from importlib import resources

__all__ = ["SAMPLES", "sample_path"]

#: The sample files, by name: the file in the package.
SAMPLES = {"ratings.txt": "sample_ratings.txt", "ratings.csv": "sample_ratings.csv"}


def sample_path(name: str = "ratings.txt") -> str:
    """The path of a sample data file shipped with jaxmix.

    Args:
        name: ``"ratings.txt"`` (dense, the course format) or ``"ratings.csv"`` (triples with
            ids); see :mod:`jaxmix.data.samples`.

    Returns:
        The file's path, a string.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is not one of the samples.

    Example:
        >>> import jaxmix
        >>> jaxmix.load_ratings(jaxmix.sample_path()).shape
        (240, 30)
        >>> jaxmix.load_sparse_ratings(jaxmix.sample_path("ratings.csv")).shape
        (240, 30)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string; got {type(name).__name__}")
    if name not in SAMPLES:
        raise ValueError(f"no sample named {name!r}; the samples are {sorted(SAMPLES)}")
    path = resources.files(__package__) / SAMPLES[name]
    return os.fspath(path)
