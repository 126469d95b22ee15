"""Filling the missing entries of a matrix from a fitted mixture.

Dense matrices are completed whole; for a :class:`~jaxmix.SparseRatings` (or a dense matrix too)
ask for chosen entries with ``rows=`` and ``cols=``: the responsibilities come from the layout's
E-step and only the asked-for predictions are formed, so nothing ``n x d`` is allocated. The
predictive moments of an entry are the covariance family's (:meth:`Family.predict
<jaxmix.models.families.base.Family.predict>`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxmix._precision import highest
from jaxmix.data import Standardizer, as_data, float_dtype
from jaxmix.data.ratings import IdMaps, SparseRatings, check_entries
from jaxmix.models.families import Estimation, as_params, family_of
from jaxmix.models.mixture import as_device, to_internal
from jaxmix.params import MixtureParams

__all__ = [
    "RowPosterior",
    "check_fit",
    "complete",
    "component_moments",
    "entry_log_density",
    "fitted_estimation",
    "fitted_params",
    "heldout_scores",
    "posterior_of_rows",
    "predict_entries",
    "refuse_ambiguous_positions",
    "responsibilities",
    "row_posterior",
]

#: Asked-for entries predicted at once (bounds the ``(m, K)`` temporaries).
_ENTRY_CHUNK = 1 << 20


def fitted_params(result: Any, what: str = "result") -> MixtureParams:
    """The float64 parameters of a result (or of :class:`~jaxmix.MixtureParams`)."""
    params = as_params(result, what=what)
    return jax.tree.map(lambda a: np.asarray(a, np.float64), params)


def check_fit(params: MixtureParams, d: int, *, batch: int = 0, label: str = "fitted") -> None:
    """Refuse parameters no fit can produce (wrong shapes, NaN, non-positive variances...).

    ``batch`` leading axes (e.g. ``(chain, draw)`` of posterior draws) are allowed on every field.
    """
    mu, weights = np.asarray(params.mu), np.asarray(params.weights)
    noun = "draws'" if label == "draws" else label
    if mu.ndim != batch + 2 or mu.shape[-1] != d:
        raise ValueError(f"the {noun} means have shape {mu.shape} but X has {d} columns")
    lead, K = mu.shape[:batch], mu.shape[-2]
    if weights.shape != (*lead, K):
        raise ValueError(
            f"{label} weights have shape {weights.shape}; expected {(*lead, K)} (one per "
            f"component of mu, shape {mu.shape})"
        )
    family_of(params).check_cov(params.cov, K, d, batch=batch, label=label)
    if not np.all(np.isfinite(mu)):
        raise ValueError(f"{label} mu must be finite")
    if not (np.all(np.isfinite(weights) & (weights >= 0)) and np.all(weights.sum(axis=-1) > 0)):
        raise ValueError(f"{label} weights must be finite and non-negative (not all zero)")


class RowPosterior(NamedTuple):
    """What a fit says of given rows, in the units the E-step ran in.

    Attributes:
        resp: ``p(k | row)``, float64 ``(n, K)`` (rows sum to one).
        aux: The family's per-row ``aux`` (float64 arrays with a leading axis ``n``; the factor
            family's posterior of the factors), or ``None``.
        params: The parameters in those units (:func:`~jaxmix.models.mixture.to_internal`).
        std: The map from data units (``x = z * std.scale + std.offset``).
        est: The fit's ``estimation_cov`` in those units (:attr:`jaxmix.EMResult.estimation_cov`),
            added to the predictive variances, or ``None`` (the plain plug-in).
    """

    resp: np.ndarray
    aux: Any
    params: MixtureParams
    std: Standardizer
    est: Any = None


def fitted_estimation(result: Any) -> Any:
    """A result's ``estimation_cov`` (data units; :attr:`jaxmix.EMResult.estimation_cov`), or
    ``None`` for results without one (parameters given directly, posterior draws, SVI)."""
    est = getattr(result, "estimation_cov", None)
    if est is None:
        return None
    return jax.tree.map(lambda a: np.asarray(a, np.float64), est)


def row_posterior(
    layout: Any, params: MixtureParams, with_aux: bool = False, est: Any = None
) -> RowPosterior:
    """The E-step of ``params`` on every row of a layout (standardised units, as the fits run; a
    matrix with no observed entry is left in data units). ``est`` (data units) is the fit's
    estimation covariance, carried to the predictions."""
    n, d = layout.shape
    check_fit(params, d)
    std = Standardizer.fit(layout.summary()) if layout.nnz else Standardizer.identity(d)
    dtype = float_dtype()
    data = layout.device(std, dtype, pad=True)  # the layout fit_em builds: reused, same programs
    internal = to_internal(params, std)
    resp, aux = _e_step(as_device(internal, dtype), data.local(), with_aux)
    resp = np.asarray(layout.rows_from_slots(resp), np.float64)
    resp = resp / resp.sum(axis=1, keepdims=True)  # float32 rows sum to 1 +- 1e-7
    if aux is not None:
        aux = jax.tree.map(lambda a: np.asarray(layout.rows_from_slots(a, axis=0), np.float64), aux)
    if est is not None:
        K = np.asarray(params.mu).shape[0]
        if not isinstance(est, Estimation) or np.shape(est.noise) != (K, d):
            raise ValueError(
                f"estimation_cov must be an Estimation with noise of shape ({K}, {d}) for the "
                f"fit's {K} components and X's {d} columns"
            )
        est = jax.tree.map(lambda a: np.asarray(a, np.float64) / std.scale**2, est)
    return RowPosterior(resp, aux, internal, std, est)


def posterior_of_rows(layout: Any, params: MixtureParams) -> np.ndarray:
    """``p(k | row)`` of every row of a layout, float64 ``(n, K)`` (rows sum to one)."""
    return row_posterior(layout, params).resp


@functools.partial(jax.jit, static_argnames=("with_aux",))
@highest
def _e_step(params: MixtureParams, data: Any, with_aux: bool) -> Any:
    out = data.e_step_stats(params, family_of(params), with_stats=False, with_aux=with_aux)
    return out.resp, out.aux


def predict_entries(post: RowPosterior, rows: Any = None, cols: Any = None) -> tuple:
    """Predictive mean and variance in data units: every entry of the rows (``rows=None``:
    ``(n, d)``) or at entries ``(rows, cols)`` (``(m,)``), from the family's ``predict`` in the
    E-step's units mapped back."""
    family = family_of(post.params)
    scale = post.std.scale
    if rows is None:
        mean, var = family.predict(post.params, post.resp, None, post.aux)
        if post.est is not None:
            n, d = mean.shape
            block = max(1, _ENTRY_CHUNK // max(d, 1))
            for start in range(0, n, block):
                r = np.arange(start, min(n, start + block))
                rr, cc = np.repeat(r, d), np.tile(np.arange(d), r.size)
                var[r] += _estimation_extra(post, family, rr, cc).reshape(r.size, d)
        return mean * scale + post.std.offset, var * scale * scale
    mean = np.empty(rows.shape)
    var = np.empty(rows.shape)
    for start in range(0, rows.size, _ENTRY_CHUNK):
        s = slice(start, start + _ENTRY_CHUNK)
        r = rows[s]
        aux = None if post.aux is None else jax.tree.map(lambda a, r=r: a[r], post.aux)
        mean[s], var[s] = family.predict(post.params, post.resp[r], cols[s], aux)
        if post.est is not None:
            var[s] += _estimation_extra(post, family, r, cols[s])
    return mean * scale + post.std.offset[cols], var * scale * scale


def _estimation_extra(post: RowPosterior, family: Any, rows: Any, cols: Any) -> np.ndarray:
    """The predictive variance the parameters' estimation adds at entries ``(rows, cols)``,
    mixed over the components by the rows' responsibilities, ``(m,)`` (E-step units)."""
    aux = None if post.aux is None else jax.tree.map(lambda a: a[rows], post.aux)
    extra = family.estimation_variance(post.est, cols, aux)
    return np.sum(post.resp[rows] * extra, axis=1)


def component_moments(post: RowPosterior, rows: Any, cols: Any) -> tuple:
    """Every component's predictive mean and variance of entries ``(rows, cols)`` in data
    units, ``(m, K)`` each (``Family.entry_moments`` given the rows' ``aux``)."""
    family = family_of(post.params)
    aux = None if post.aux is None else jax.tree.map(lambda a: a[rows], post.aux)
    loc, var = family.entry_moments(post.params, cols, aux)
    if post.est is not None:
        var = var + family.estimation_variance(post.est, cols, aux)
    scale = post.std.scale
    return loc * scale + post.std.offset[cols][:, None], var * scale * scale


def responsibilities(X: Any, result: Any, *, mask: Any = None) -> np.ndarray:
    """Posterior component probabilities ``p(k | row)`` of the rows of ``X``.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries (need not be the fit data), or a
            :class:`~jaxmix.SparseRatings` (rows without entries get the weights).
        result: A fitted result or :class:`~jaxmix.MixtureParams`.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        Array of shape ``(n, K)`` whose rows sum to one.
    """
    layout = as_data(X, mask, allow_all_missing=True)
    return posterior_of_rows(layout, fitted_params(result))


def complete(
    X: Any,
    result: Any,
    *,
    mask: Any = None,
    return_std: bool = False,
    rows: Any = None,
    cols: Any = None,
    user_ids: Any = None,
    item_ids: Any = None,
    positions: bool = False,
) -> Any:
    """Fill the missing entries of ``X`` with their conditional mean under a fitted mixture.

    .. math::

        \\hat x_{ul} = \\sum_k p(k \\mid x_{u,C_u})\\, \\mu_{kl}, \\qquad
        \\mathrm{sd}_{ul}^2 = \\sum_k p(k \\mid x_{u,C_u}) (\\Sigma_{k,ll} + \\mu_{kl}^2)
            - \\hat x_{ul}^2

    (the covariance family's predictive moments), plus, for an :class:`~jaxmix.EMResult`, the
    variance its estimation uncertainty adds (:attr:`~jaxmix.EMResult.estimation_cov`: wider for
    columns with few observed entries). Observed entries are copied through unchanged
    (their standard deviation is 0). The responsibilities come from an E-step of the given
    parameters on ``X``.

    Three forms: without entries, the whole completed ``(n, d)`` matrix (for a
    :class:`~jaxmix.SparseRatings` this materialises it: small matrices only; a pandas
    ``DataFrame`` gives a ``DataFrame`` with its index and columns); with ``user_ids`` /
    ``item_ids`` (a ``SparseRatings`` that keeps its ids), the predictions at those (user, item)
    pairs; with ``rows`` / ``cols``, at those positions. The last two take ``O((n + m) K)``
    memory for ``m`` entries (the way to score held-out ratings of a large sparse matrix).

    Ids or positions: a ``SparseRatings`` built by :func:`jaxmix.load_sparse_ratings` or
    :func:`jaxmix.sparse_ratings` keeps the original identifiers (``row_ids``, ``col_ids``) and
    row ``i`` is the ``i``-th smallest user id, not user ``i``. Where those ids are integers
    other than ``0 .. n - 1`` (MovieLens ``userId`` 1..671), positional ``rows`` / ``cols``
    could be ids by mistake and would silently predict for other users and items, so they are
    refused unless ``positions=True`` confirms them; ask by id with ``user_ids`` / ``item_ids``
    (or convert with :meth:`SparseRatings.index <jaxmix.SparseRatings.index>`).

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks the entries to fill. It is not modified. Or a
            :class:`~jaxmix.SparseRatings` (its triples are the observed entries).
        result: A fitted result (from :func:`jaxmix.fit_em`, :func:`jaxmix.kmeans`, ...) or
            :class:`~jaxmix.MixtureParams`.
        mask: Optional boolean ``(n, d)``, ``True`` = observed (unobserved entries are filled);
            dense ``X`` only.
        return_std: Also return the predictive standard deviation.
        rows, cols: Optional integer arrays of equal length ``m``: the positions of the entries
            to predict (observed ones are returned as observed, with standard deviation 0).
        user_ids, item_ids: Instead of ``rows`` / ``cols``: the identifiers of the entries, of
            equal length ``m`` (a ``SparseRatings`` with ids; without ids they are positions).
        positions: Confirm that ``rows`` / ``cols`` are positions when ``X`` carries integer
            ids other than ``0 .. n - 1``.

    Returns:
        The completed ``(n, d)`` float64 array (a ``DataFrame`` for a ``DataFrame``), or with
        entries the ``(m,)`` predictions; with ``return_std`` a second value of the same kind of
        predictive standard deviations (0 at observed entries).

    Raises:
        ValueError: Ambiguous positions (above), ids and positions both given, an entry out of
            range.
        jaxmix.UnknownIdError: An id that is not in ``X`` (also a ``KeyError``).

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.0, np.nan], [5.0, 6.0], [np.nan, 6.0]])
        >>> filled = jaxmix.complete(X, jaxmix.fit_em(X, 2, min_var=0.01))
        >>> bool(np.isnan(filled).any())
        False
        >>> S = jaxmix.sparse_ratings([7, 7, 9, 12], [31, 40, 40, 31], [4.0, 2.0, 1.5, 4.5])
        >>> fit = jaxmix.fit_em(S, 2, min_var=0.01)
        >>> jaxmix.complete(S, fit, user_ids=[9, 12], item_ids=[31, 40]).shape
        (2,)
        >>> jaxmix.complete(S, fit, rows=[1, 2], cols=[0, 1])
        Traceback (most recent call last):
        ...
        ValueError: X carries user ids (7 .. 12), not positions 0 .. 2: ...
    """
    if (rows is None) != (cols is None):
        raise TypeError("give both rows and cols (the entries to predict), or neither")
    if (user_ids is None) != (item_ids is None):
        raise TypeError("give both user_ids and item_ids (the entries to predict), or neither")
    if rows is not None and user_ids is not None:
        raise ValueError("give the entries by position (rows, cols) or by id, not both")
    ids = X.ids if isinstance(X, SparseRatings) else None
    if rows is not None and not positions and ids is not None:
        refuse_ambiguous_positions(ids, X.shape)
    params = fitted_params(result)
    layout = as_data(X, mask, allow_all_missing=True)
    if user_ids is not None:
        rows, cols = (ids or IdMaps()).index(user_ids, item_ids, layout.shape)
    post = row_posterior(layout, params, with_aux=True, est=fitted_estimation(result))
    if rows is not None:
        r, c = check_entries(rows, cols, layout.shape)
        found, observed_values = layout.lookup(r, c)
        mean, var = predict_entries(post, r, c)
        filled = np.where(found, observed_values, mean)
        if not return_std:
            return filled
        return filled, np.where(found, 0.0, np.sqrt(var))
    values = layout.to_dense()
    observed = ~np.isnan(values)
    mean, var = predict_entries(post)
    filled = np.where(observed, values, mean)
    std = np.where(observed, 0.0, np.sqrt(var)) if return_std else None
    if _is_data_frame(X):
        import pandas as pd  # present: X is one of its frames

        filled = pd.DataFrame(filled, index=X.index, columns=X.columns)
        if return_std:
            std = pd.DataFrame(std, index=X.index, columns=X.columns)
    return (filled, std) if return_std else filled


def _is_data_frame(X: Any) -> bool:
    """Whether ``X`` is a pandas ``DataFrame`` (without importing pandas)."""
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas")
        for cls in type(X).__mro__
    )


def refuse_ambiguous_positions(
    ids: IdMaps, shape: tuple[int, int], what: str = "rows= and cols="
) -> None:
    """Refuse positions (``what``) on a matrix whose integer ids differ from its positions.

    Raises:
        ValueError: Naming the ids, the keywords by id and ``positions=True``.
    """
    axes = ids.ambiguous()
    if not axes:
        return
    name, which, size = (
        ("user", ids.row_ids, shape[0]) if axes[0] == "rows" else ("item", ids.col_ids, shape[1])
    )
    raise ValueError(
        f"X carries {name} ids ({which[0]} .. {which[-1]}), not positions 0 .. {size - 1}: "
        f"{what} are positions, so ids passed there would silently predict for other users "
        "and items. Pass user_ids= and item_ids= to predict by id (S.index(user_ids, item_ids) "
        "gives the positions), or positions=True to confirm that they are positions"
    )


def entry_log_density(
    X: Any, result: Any, rows: Any, cols: Any, values: Any, *, mask: Any = None
) -> np.ndarray:
    """Log predictive density of values at missing entries given the rows' observed entries.

    At entry ``(u, l)`` the plug-in predictive of a fit is the mixture ``sum_k p(k | x_{u,C})
    N(x; m_kul, v_kul)`` of every component's prediction given the row
    (``Family.entry_moments``); this returns ``log`` of it at ``values`` (the held-out log
    predictive density of :func:`jaxmix.select_k`'s ``criterion="heldout"``).

    Args:
        X: The data the predictions condition on (dense or :class:`~jaxmix.SparseRatings`).
        result: A fitted result or :class:`~jaxmix.MixtureParams`.
        rows, cols: The entries, ``(m,)`` each.
        values: The values to score there, ``(m,)``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        ``(m,)`` float64 log densities (data units).
    """
    layout, r, c, values = _scored_entries(X, rows, cols, values, mask)
    return _log_density(_posterior(layout, result), r, c, values)


def heldout_scores(
    X: Any, result: Any, rows: Any, cols: Any, values: Any, *, mask: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictive mean, standard deviation and log density at entries missing from ``X``, from
    one pass over the rows (what :func:`jaxmix.select_k`'s ``criterion="heldout"`` scores).

    The same numbers as :func:`complete` with ``return_std=True`` at ``(rows, cols)`` and
    :func:`entry_log_density` at ``values``, which each pass over the rows.

    Args:
        X: The data the predictions condition on (dense or :class:`~jaxmix.SparseRatings`).
        result: A fitted result or :class:`~jaxmix.MixtureParams`.
        rows, cols: The entries (positions), ``(m,)`` each; none may be observed in ``X``.
        values: The values to score there, ``(m,)``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        ``(mean, sd, log_density)``, ``(m,)`` float64 each (data units).

    Raises:
        ValueError: An entry is observed in ``X``, or ``values`` has not one value per entry.
    """
    layout, r, c, values = _scored_entries(X, rows, cols, values, mask)
    found, _ = layout.lookup(r, c)
    if np.any(found):
        first = int(np.flatnonzero(found)[0])
        raise ValueError(
            f"entry ({int(r[first])}, {int(c[first])}) is observed in X: held-out entries must "
            "be missing from the data the predictions condition on"
        )
    post = _posterior(layout, result)
    mean, var = predict_entries(post, r, c)
    return mean, np.sqrt(var), _log_density(post, r, c, values)


def _scored_entries(X: Any, rows: Any, cols: Any, values: Any, mask: Any) -> tuple:
    """The checked arguments of a scoring at entries: the layout, the entries, their values."""
    layout = as_data(X, mask, allow_all_missing=True)
    r, c = check_entries(rows, cols, layout.shape)
    values = np.asarray(values, np.float64).ravel()
    if values.shape != r.shape:
        raise ValueError(f"values must have one value per entry ({r.size}); got {values.shape}")
    return layout, r, c, values


def _posterior(layout: Any, result: Any) -> RowPosterior:
    """The rows' posterior a prediction at entries needs (the family's ``aux``, the estimation
    uncertainty)."""
    return row_posterior(
        layout, fitted_params(result), with_aux=True, est=fitted_estimation(result)
    )


def _log_density(post: RowPosterior, r: np.ndarray, c: np.ndarray, values: np.ndarray) -> Any:
    """The mixture's log predictive density of ``values`` at entries ``(r, c)``, ``(m,)``."""
    out = np.empty(r.shape)
    for start in range(0, r.size, _ENTRY_CHUNK):
        s = slice(start, start + _ENTRY_CHUNK)
        loc, var = component_moments(post, r[s], c[s])
        with np.errstate(divide="ignore"):
            log_r = np.log(post.resp[r[s]])
        terms = log_r - 0.5 * (np.log(2.0 * np.pi * var) + (values[s, None] - loc) ** 2 / var)
        top = terms.max(axis=1, keepdims=True)
        out[s] = top[:, 0] + np.log(np.exp(terms - top).sum(axis=1))
    return out
