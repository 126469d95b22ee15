"""Predictive summaries of the missing entries: mean, standard deviation and an HDI per entry.

The predictive distribution of a missing entry ``x_ul`` given the row's observed entries is, for
one parameter value ``theta = (w, mu, var)``, the mixture

.. math::

    p(x_{ul} \\mid x_{u,C_u}, \\theta) = \\sum_k p(k \\mid x_{u,C_u}, \\theta)\\,
        \\mathcal N(x_{ul}; \\mu_{kl}, \\Sigma_{k,ll}),

the responsibilities ``p(k | x_{u,C_u}, theta)`` being those of the data layout's E-step and the
moments of the mixture those of the covariance family (``Family.predict``, the formulas of
:func:`jaxmix.complete`). Two kinds of results:

* **Point estimates** (:func:`jaxmix.fit_em`, a ``"map"`` :func:`jaxmix.fit_svi`,
  :class:`~jaxmix.MixtureParams`): the *plug-in* predictive at the estimate. Its mean and
  standard deviation are exact (the formulas of :func:`jaxmix.complete`, equal up to rounding); the
  interval is the HDI of ``num_samples`` draws from the mixture. It ignores the uncertainty of the
  parameters, so its intervals are somewhat too narrow.
* **Posterior draws** (:func:`jaxmix.fit_mcmc`, a ``"meanfield"`` :func:`jaxmix.fit_svi`): the
  posterior predictive ``int p(x_ul | x_{u,C_u}, theta) p(theta | X) d theta``. ``num_samples``
  parameter draws are taken (evenly spaced over the pooled MCMC chains, reused cyclically when
  there are fewer; fresh draws from ``q`` for mean-field), the responsibilities recomputed at each,
  and one component and one Normal value drawn per entry and parameter draw. The mean and standard
  deviation are Rao-Blackwellised (the exact moments of the mixture at every parameter draw,
  averaged over the draws), the interval is the HDI of the predictive draws (ArviZ's ``az.hdi``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jaxmix._summary import num, summary_repr
from jaxmix._validate import check_positive_int, check_probability, check_seed
from jaxmix.data import DenseLayout, IdMaps, SparseRatings, as_data
from jaxmix.models.families import family_of
from jaxmix.posterior.completion import (
    check_fit,
    component_moments,
    fitted_estimation,
    fitted_params,
    predict_entries,
    refuse_ambiguous_positions,
    row_posterior,
)
from jaxmix.posterior.diagnostics import import_arviz
from jaxmix.posterior.draws import (
    check_draws,
    flatten_draws,
    has_draws,
    posterior_draws,
    posterior_moments,
    sample_entries,
    sample_entries_given_rows,
    sample_mixture,
    take,
)

__all__ = ["MAX_ALL_MISSING", "MAX_DENSE_FOR_DRAWS", "PredictiveSummary", "predictive_summary"]

_BLOCK_ELEMENTS = 4_000_000  # predictive draws held at once (entries x draws)


class PredictiveSummary(NamedTuple):
    """A tidy table of predictive summaries, one entry per matrix entry (columns as arrays).

    Attributes:
        row: Row index (position) of each entry, ``(M,)``.
        column: Column index (position) of each entry, ``(M,)``.
        mean: Predictive mean, ``(M,)``.
        sd: Predictive standard deviation, ``(M,)``.
        lower: Lower end of the highest-density interval, ``(M,)``.
        upper: Upper end of the highest-density interval, ``(M,)``.
        user_id: The user id of each entry, ``(M,)``, when the data carry ids (a
            :class:`~jaxmix.SparseRatings` from :func:`jaxmix.load_sparse_ratings`), else ``None``.
        item_id: The item id of each entry, ``(M,)``, or ``None``.
    """

    row: np.ndarray
    column: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    user_id: np.ndarray | None = None
    item_id: np.ndarray | None = None

    def __repr__(self) -> str:
        def lines() -> list[str]:
            M = self.n_entries
            if M == 0:
                return ["0 entries"]
            mean, sd = np.asarray(self.mean), np.asarray(self.sd)
            width = np.asarray(self.upper) - np.asarray(self.lower)
            return [
                f"{M} entries in {np.unique(self.row).size} row(s) and "
                f"{np.unique(self.column).size} column(s)",
                f"mean {num(mean.min(), 4)} .. {num(mean.max(), 4)}, "
                f"average sd={num(sd.mean(), 4)}, average interval width={num(width.mean(), 4)}",
                ".to_pandas() / .to_records() give the table",
            ]

        return summary_repr(self, lines)

    @property
    def n_entries(self) -> int:
        """Number of entries ``M`` (rows of the table)."""
        return int(np.shape(self.row)[0])

    def columns(self) -> tuple[str, ...]:
        """The table's columns: the ids first when there are any, then ``row, column, mean, sd,
        lower, upper``."""
        ids = tuple(name for name in ("user_id", "item_id") if getattr(self, name) is not None)
        return ids + self._fields[:6]

    def to_records(self) -> np.ndarray:
        """The table as a NumPy structured array with the fields of :meth:`columns`."""
        kinds = {"row": np.int64, "column": np.int64}
        dtype = [
            (
                name,
                np.asarray(getattr(self, name)).dtype if "_id" in name else kinds.get(name, float),
            )
            for name in self.columns()
        ]
        out = np.empty(self.n_entries, dtype=dtype)
        for name in self.columns():
            out[name] = getattr(self, name)
        return out

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame`` with the columns of :meth:`columns` (needs pandas,
        which jaxmix does not require)."""
        import pandas as pd

        return pd.DataFrame({name: getattr(self, name) for name in self.columns()})

    def coverage(self, X_true: Any) -> float:
        """Share of the entries whose true value lies in ``[lower, upper]``.

        Args:
            X_true: ``(n, d)`` matrix holding the true values at the table's entries.

        Returns:
            The empirical coverage, a float in ``[0, 1]``.
        """
        truth = np.asarray(X_true, np.float64)[self.row, self.column]
        if not np.all(np.isfinite(truth)):
            raise ValueError("X_true is NaN or infinite at some of the table's entries")
        return float(np.mean((truth >= self.lower) & (truth <= self.upper)))

    def format(self, max_rows: int = 10) -> str:
        """A plain-text table of the first ``max_rows`` entries (by id when there are ids)."""
        by_id = self.user_id is not None and self.item_id is not None
        first, second = ("user", "item") if by_id else ("row", "column")
        a, b = (self.user_id, self.item_id) if by_id else (self.row, self.column)
        width = max([6, *(len(str(v)) for v in (*a[:max_rows], *b[:max_rows]))])
        head = f"{first:>{width}} {second:>{width}}"
        lines = [f"{head} {'mean':>9} {'sd':>8} {'lower':>9} {'upper':>9}"]
        for i in range(min(max_rows, self.n_entries)):
            lines.append(
                f"{a[i]!s:>{width}} {b[i]!s:>{width}} {self.mean[i]:9.3f} {self.sd[i]:8.3f} "
                f"{self.lower[i]:9.3f} {self.upper[i]:9.3f}"
            )
        if self.n_entries > max_rows:
            lines.append(f"... ({self.n_entries} entries)")
        return "\n".join(lines)


#: ``entries=None`` on a :class:`~jaxmix.SparseRatings` lists every missing entry; refused above
#: this many (name the entries to predict instead).
MAX_ALL_MISSING = 1_000_000


def _check_entries(
    entries: Any, layout: Any, ids: IdMaps | None, by_id: tuple[Any, Any] | None
) -> tuple[np.ndarray, np.ndarray]:
    n, d = layout.shape
    if by_id is not None:
        rows, cols = (ids or IdMaps()).index(*by_id, layout.shape)
    elif entries is None:
        if layout.kind == DenseLayout.kind:
            rows, cols = np.nonzero(~layout.observed)
        else:
            n_missing = n * d - layout.nnz
            if n_missing > MAX_ALL_MISSING:
                raise ValueError(
                    f"X has {n_missing:,} missing entries (more than {MAX_ALL_MISSING:,}): name "
                    "the entries to summarise with entries=(rows, cols) or user_ids=, item_ids="
                )
            rows, cols = np.nonzero(np.isnan(layout.to_dense()))
        return rows.astype(np.int64), cols.astype(np.int64)
    else:
        try:
            rows, cols = entries
        except (TypeError, ValueError):
            raise TypeError("entries must be a pair (rows, cols) of integer arrays") from None
        rows, cols = np.asarray(rows), np.asarray(cols)
        if rows.shape != cols.shape or rows.ndim != 1:
            raise ValueError(
                f"rows and cols must be 1-D of the same length; got {rows.shape}, {cols.shape}"
            )
        if rows.size and (rows.dtype.kind not in "iu" or cols.dtype.kind not in "iu"):
            raise TypeError("entries must hold integer indices")
        if rows.size and (rows.min() < 0 or rows.max() >= n or cols.min() < 0 or cols.max() >= d):
            raise ValueError(f"entries out of range for a ({n}, {d}) matrix")
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    seen = layout.lookup(rows, cols)[0] if rows.size else np.zeros(0, bool)
    if seen.any():
        i = int(np.argmax(seen))
        where = f"({rows[i]}, {cols[i]})"
        if by_id is not None:
            where = f"(user {np.asarray(by_id[0])[i]}, item {np.asarray(by_id[1])[i]})"
        raise ValueError(
            f"entry {where} is observed in X; predictive summaries are for missing "
            "entries (hide the entries to predict, e.g. with jaxmix.holdout_split)"
        )
    return rows, cols


#: Posterior draws on a :class:`~jaxmix.SparseRatings` run on its dense form, up to this many
#: entries ``n * d``.
MAX_DENSE_FOR_DRAWS = 10_000_000


def _dense_for_draws(layout: Any) -> Any:
    """The dense layout of a triples layout, for the posterior-draws path (small matrices)."""
    n, d = layout.shape
    if n * d > MAX_DENSE_FOR_DRAWS:
        raise ValueError(
            f"predictive summaries of posterior draws (MCMC, mean-field SVI) run on the dense "
            f"matrix, and this SparseRatings is {n:,} x {d:,} (more than {MAX_DENSE_FOR_DRAWS:,} "
            "entries); summarise a point estimate (jaxmix.fit_em) on the triples instead"
        )
    return as_data(layout.to_dense(), method="dense")


def _hdi(samples: np.ndarray, hdi_prob: float) -> np.ndarray:
    """ArviZ's HDI of every column of ``samples`` ``(S, M)``: array ``(M, 2)``."""
    az = import_arviz()
    if samples.shape[1] == 0:
        return np.zeros((0, 2))
    return np.asarray(az.hdi(samples[None], hdi_prob=hdi_prob)).reshape(-1, 2)


def predictive_summary(
    result: Any,
    X: Any,
    hdi_prob: float = 0.9,
    *,
    mask: Any = None,
    entries: Any = None,
    num_samples: int = 1000,
    seed: int = 0,
    user_ids: Any = None,
    item_ids: Any = None,
    positions: bool = False,
) -> PredictiveSummary:
    """Predictive mean, standard deviation and HDI of missing entries given the observed ones.

    For every missing entry ``(u, l)`` (or those in ``entries``) the predictive distribution of
    ``x_ul`` given row ``u``'s observed entries: plug-in at the estimate for point-estimate
    results, the full posterior predictive for MCMC and mean-field SVI results (see the module
    docstring). The interval is the highest-density interval of ``num_samples`` predictive draws
    at probability ``hdi_prob`` (``az.hdi``).

    Args:
        result: :func:`jaxmix.fit_mcmc` or :func:`jaxmix.fit_svi` result, an EM result or
            :class:`~jaxmix.MixtureParams`.
        X: Array-like ``(n, d)``, ``NaN`` at the entries to predict (normally the data the result
            was fit on), or a :class:`~jaxmix.SparseRatings` (its triples are the observed
            entries; for a point estimate the responsibilities come from its triples and
            nothing ``n x d`` is built unless ``entries=None``; posterior draws use its dense
            form, up to :data:`MAX_DENSE_FOR_DRAWS` entries).
        hdi_prob: Probability of the interval, in ``(0, 1)``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        entries: ``None`` (every missing entry, in row-major order; for a ``SparseRatings`` at
            most :data:`MAX_ALL_MISSING` of them) or a pair ``(rows, cols)`` of integer arrays
            naming missing entries by position.
        num_samples: Predictive draws per entry (at least 10).
        seed: Seed of the draws.
        user_ids, item_ids: Instead of ``entries``: the missing entries by id (a
            ``SparseRatings`` that keeps its ids, see :func:`jaxmix.complete`).
        positions: Confirm that ``entries`` are positions when ``X`` carries integer ids other
            than ``0 .. n - 1`` (refused otherwise, as in :func:`jaxmix.complete`).

    Returns:
        A :class:`PredictiveSummary` (columns ``row, column, mean, sd, lower, upper``, and
        ``user_id, item_id`` when ``X`` carries ids). For point estimates ``mean`` and ``sd``
        equal :func:`jaxmix.complete` ``(..., return_std=True)`` at those entries.

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> em = jaxmix.fit_em(X, 2, min_var=0.01)
        >>> table = jaxmix.predictive_summary(em, X, 0.9)
        >>> table.row.tolist(), table.column.tolist()
        ([1, 3], [1, 0])
    """
    layout = as_data(X, mask, method=None)  # the input's form: triples for a SparseRatings
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    num_samples = check_positive_int(num_samples, "num_samples")
    if num_samples < 10:
        raise ValueError(f"num_samples must be at least 10 for an interval; got {num_samples}")
    seed = check_seed(seed)
    if (user_ids is None) != (item_ids is None):
        raise TypeError("give both user_ids and item_ids (the entries to summarise), or neither")
    if user_ids is not None and entries is not None:
        raise ValueError("give the entries by position (entries=) or by id, not both")
    ids = X.ids if isinstance(X, SparseRatings) else None
    if entries is not None and not positions and ids is not None:
        refuse_ambiguous_positions(ids, layout.shape, "entries=(rows, cols)")
    by_id = None if user_ids is None else (user_ids, item_ids)
    rows, cols = _check_entries(entries, layout, ids, by_id)
    rng = np.random.default_rng(seed)
    n, d = layout.shape

    if has_draws(result):
        if layout.kind != DenseLayout.kind:
            layout = _dense_for_draws(layout)
        draws = posterior_draws(result, num_samples, seed)
        check_draws(draws, d)
        flat = flatten_draws(draws)
        total = flat.weights.shape[0]
        pick = (np.arange(num_samples) * total) // num_samples  # evenly spaced, cyclic if fewer
        sampled = take(flat, pick)
        if family_of(sampled).row_dependent:
            values, mean, sd = sample_entries_given_rows(sampled, layout, rows, cols, rng)
            lower, upper = _intervals(rows.size, num_samples, hdi_prob, lambda sl: values[:, sl])
        else:
            mean, sd, z = posterior_moments(sampled, layout, seed, rows, cols)
            index = np.arange(num_samples)
            lower, upper = _intervals(
                rows.size,
                num_samples,
                hdi_prob,
                lambda sl: sample_entries(sampled, index, z, rows[sl], cols[sl], rng),
            )
    else:
        # the plug-in predictive: one component per draw from the row's responsibilities, then
        # that component's prediction given the row (for the factor family, its factors)
        params = fitted_params(result)
        check_fit(params, d)
        post = row_posterior(
            layout,
            params,
            with_aux=family_of(params).row_dependent,
            est=fitted_estimation(result),
        )
        mean, var = predict_entries(post, rows, cols)
        sd = np.sqrt(var)

        def plug_in(sl: slice) -> np.ndarray:
            loc, cvar = component_moments(post, rows[sl], cols[sl])
            return sample_mixture(post.resp[rows[sl]], loc, cvar, num_samples, rng)

        lower, upper = _intervals(rows.size, num_samples, hdi_prob, plug_in)
    return PredictiveSummary(
        row=rows,
        column=cols,
        mean=np.asarray(mean, np.float64),
        sd=np.asarray(sd, np.float64),
        lower=lower,
        upper=upper,
        user_id=None if ids is None or ids.row_ids is None else ids.row_ids[rows],
        item_id=None if ids is None or ids.col_ids is None else ids.col_ids[cols],
    )


def _intervals(
    m: int, num_samples: int, hdi_prob: float, draw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """HDIs of ``m`` entries from their predictive draws, ``draw(slice)`` giving ``(S, block)``
    at a time (bounded memory)."""
    lower = np.empty(m)
    upper = np.empty(m)
    block = max(1, _BLOCK_ELEMENTS // num_samples)
    for start in range(0, m, block):
        sl = slice(start, start + block)
        interval = _hdi(draw(sl), hdi_prob)
        lower[sl], upper[sl] = interval[:, 0], interval[:, 1]
    return lower, upper
