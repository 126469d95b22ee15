"""The mixture's density, whatever the covariance family and the data layout.

Row ``u`` is drawn from ``sum_k w_k N(mu_k, Sigma_k)`` with ``Sigma_k`` given by the covariance
family (:mod:`jaxmix.models.families`). Only the observed coordinates ``C_u`` enter the
likelihood, the missing ones being integrated out exactly:

.. math::

    \\log p(x_{u,C_u}) = \\operatorname{logsumexp}_k \\Big[\\log(w_k + 10^{-16})
        + \\log \\mathcal N(x_{u,C_u}; \\mu_{k,C_u}, \\Sigma_{k,C_u})\\Big]

(the ``1e-16`` keeps the logarithm of an emptied component finite, the reference convention).
The family writes the bracket; a data layout (:mod:`jaxmix.data`) evaluates it over its rows.
:func:`objective` = log-likelihood + log-prior (:func:`jaxmix.models.prior.log_prior`) is the
quantity EM maximises and the log density of :func:`jaxmix.models.mixture_model` with its
discrete site summed out.

Units: the kernels compute on a standardised copy of the data (:class:`jaxmix.data.Standardizer`);
:func:`to_internal` and :func:`to_data` map parameters between the two (the mixture is
equivariant under the affine map).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import logsumexp
from scipy.optimize import linear_sum_assignment

from jaxmix._precision import highest
from jaxmix._validate import ColumnScaleWarning, EmptyComponentWarning, VarianceFloorWarning
from jaxmix.data import ColumnSummary, Standardizer, as_data, float_dtype
from jaxmix.models.families import as_params, family_of
from jaxmix.models.prior import log_prior
from jaxmix.params import MixtureParams

__all__ = [
    "FLOOR_SHARE",
    "FLOOR_SPREAD",
    "SCALE_RATIO",
    "as_device",
    "warn_column_scales",
    "warn_fit",
    "match_components",
    "match_responsibilities",
    "objective",
    "permute_components",
    "relabel",
    "responsibility_costs",
    "to_data",
    "to_internal",
]


#: :func:`warn_fit` warns when at least this share of the fitted variances sit on the floor ...
FLOOR_SHARE = 0.5
#: ... and the floor is at least this many times the data's pooled variance.
FLOOR_SPREAD = 0.5
#: :func:`warn_column_scales` warns when the largest column standard deviation is this many times
#: the smallest (three orders of magnitude).
SCALE_RATIO = 1e3
#: A component whose weight times the number of rows is below this is empty.
EMPTY_ROWS = 1e-6
#: Draws per compiled E-step in :func:`responsibility_costs` (its memory is about
#: ``RELABEL_CHUNK * n * K`` numbers).
RELABEL_CHUNK = 32
#: :func:`responsibility_costs` floors a log responsibility here (finite costs when a draw's
#: component has weight 0 and a reference responsibility is 0).
LOG_RESP_FLOOR = -1e4


def warn_column_scales(summary: ColumnSummary, family: Any, stacklevel: int = 3) -> None:
    """Warn (:class:`~jaxmix.ColumnScaleWarning`) when the columns' standard deviations span more
    than :data:`SCALE_RATIO` and ``family`` gives all columns one variance per component
    (``Family.one_column_variance``: ``"spherical"``, ``"shared"``): the widest columns then
    decide the clusters alone.

    Columns with fewer than two entries or no spread are left out of the comparison.
    """
    if not family.one_column_variance:
        return
    sd = summary.column_sd()
    sd = sd[np.isfinite(sd) & (sd > 0)]
    if sd.size < 2:
        return
    lo, hi = float(sd.min()), float(sd.max())
    if hi > SCALE_RATIO * lo:
        warnings.warn(
            f"the columns' standard deviations range from {lo:.3g} to {hi:.3g} ({hi / lo:.2g} "
            f"times); the {family.name!r} family gives every column one variance, so the widest "
            "columns decide the clusters. Use covariance='diag', or divide every column by its "
            "standard deviation first",
            ColumnScaleWarning,
            stacklevel=stacklevel,
        )


def warn_fit(
    params: MixtureParams, summary: ColumnSummary, min_var: float, stacklevel: int = 3
) -> None:
    """Warn about a fitted mixture (data units) whose numbers the data did not decide.

    * :class:`~jaxmix.EmptyComponentWarning`: a component's weight times the number of rows is
      below :data:`EMPTY_ROWS` (it explains no row).
    * :class:`~jaxmix.VarianceFloorWarning`: at least :data:`FLOOR_SHARE` of the fitted
      variances sit on ``min_var`` while the floor is at least :data:`FLOOR_SPREAD` times the
      data's pooled variance (the course's ``0.25`` on data in ``[0, 1]``): the floor is as wide
      as the data themselves. The default floor (:func:`jaxmix.data.default_min_var`) is below
      that by construction; data without spread (one value) are not warned about.
    """
    weights = np.asarray(params.weights, np.float64)
    empty = np.flatnonzero(weights * summary.n_rows < EMPTY_ROWS)
    if empty.size:
        warnings.warn(
            f"{empty.size} of {weights.size} components are empty (weight about 0: components "
            f"{empty.tolist()}); the data support fewer components, try a smaller K",
            EmptyComponentWarning,
            stacklevel=stacklevel,
        )
    spread = summary.pooled_variance
    if min_var > 0 and spread > 0 and min_var >= FLOOR_SPREAD * spread:
        var = np.asarray(params.cov.var, np.float64)
        share = float(np.mean(var <= min_var * (1.0 + 1e-4)))
        if share >= FLOOR_SHARE:
            warnings.warn(
                f"{share:.0%} of the fitted variances sit on the floor min_var={min_var:.3g}, "
                f"which is {min_var / spread:.2g} times the data's pooled variance "
                f"({spread:.3g}): the floor, not the data, decides them. Pass min_var=None "
                "(the scale-aware default) or a smaller min_var",
                VarianceFloorWarning,
                stacklevel=stacklevel,
            )


def to_internal(params: MixtureParams, std: Standardizer) -> MixtureParams:
    """Parameters in data units (any leading batch axes) in the standardised units of ``std``,
    as float64 NumPy arrays."""
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    family = family_of(params)
    return params._replace(
        mu=(params.mu - std.offset) / std.scale, cov=family.rescale(params.cov, 1.0 / std.scale)
    )


def to_data(params: MixtureParams, std: Standardizer) -> MixtureParams:
    """Standardised parameters back in data units, as float64 NumPy arrays."""
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    family = family_of(params)
    return params._replace(
        mu=params.mu * std.scale + std.offset, cov=family.rescale(params.cov, std.scale)
    )


def as_device(tree: Any, dtype: Any) -> Any:
    """Every array of a pytree (parameters, a prior) as a JAX array of ``dtype``."""
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def objective(params: MixtureParams, data: Any, prior: Any = None) -> Array:
    """Log-likelihood plus log-prior: the objective of (MAP-)EM, a scalar.

    Args:
        params: Mixture parameters (any family).
        data: A layout's device arrays (``data.e_step_stats``), unsharded.
        prior: A resolved :class:`~jaxmix.Prior` in the data's units, or ``None``.

    Returns:
        ``sum_u log p(x_{u,C_u} | params) + log p(params)``.
    """
    out = data.e_step_stats(params, family_of(params), with_stats=False)
    return out.log_likelihood + log_prior(params, prior)


def match_components(mu_ref: Any, mu_other: Any, precision: Any = None) -> np.ndarray:
    """The matching of two sets of component means of least total (weighted) squared distance.

    The cost of matching component ``j`` of ``other`` to component ``k`` of ``ref`` is
    ``sum_l (mu_other_jl - mu_ref_kl)^2 prec_kl`` (``prec = 1`` by default); the permutation of
    least total cost is found exactly by the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`). Used by :func:`relabel` (posterior draws) and
    by :func:`jaxmix.compare_em_svi` (two optima).

    Args:
        mu_ref: Means ``(K, d)``.
        mu_other: Means ``(K, d)``, or ``(B, K, d)`` to match a batch of sets.
        precision: Optional ``(K, d)`` weights of the squared differences (e.g. the inverse of the
            reference's variances).

    Returns:
        ``perm`` of shape ``(K,)`` (or ``(B, K)``): component ``perm[k]`` of ``other`` matches
        component ``k`` of ``ref`` (so ``mu_other[perm]`` lines up with ``mu_ref``).
    """
    a = np.asarray(mu_ref, np.float64)
    b = np.asarray(mu_other, np.float64)
    if a.ndim != 2 or b.shape[-2:] != a.shape or b.ndim not in (2, 3):
        raise ValueError(f"means must both be (K, d); got {a.shape} and {b.shape}")
    flat = b.reshape(-1, *a.shape)
    if precision is None:
        cost = ((flat[:, :, None, :] - a[None, None, :, :]) ** 2).sum(axis=-1)
    else:
        prec = np.broadcast_to(np.asarray(precision, np.float64), a.shape)
        # cost[b, j, k] = sum_l (mu_bjl - ref_kl)^2 prec_kl, expanded into matrix products
        cost = (
            np.einsum("bjl,kl->bjk", flat * flat, prec)
            - 2.0 * np.einsum("bjl,kl->bjk", flat, a * prec)
            + np.sum(a * a * prec, axis=1)[None, None, :]
        )
    perm = _least_cost(cost)
    return perm[0] if b.ndim == 2 else perm


def _least_cost(cost: np.ndarray) -> np.ndarray:
    """``perm`` ``(B, K)`` minimising ``sum_k cost[b, perm[b, k], k]`` for every ``b`` (Hungarian
    algorithm); ``cost`` ``(B, K, K)``, rows the other set's components, columns the reference's."""
    perm = np.empty(cost.shape[:2], dtype=np.int64)
    for i in range(cost.shape[0]):
        j, k = linear_sum_assignment(cost[i])
        perm[i, k] = j
    return perm


def permute_components(params: MixtureParams, perm: Any) -> MixtureParams:
    """``params`` with component ``k`` taken from component ``perm[..., k]`` (NumPy; ``perm``
    ``(..., K)`` over the parameters' leading axes)."""
    perm = np.asarray(perm)
    lead = perm.ndim - 1
    mu = np.asarray(params.mu)
    weights = np.asarray(params.weights)
    return params._replace(
        mu=np.take_along_axis(mu, perm[..., None], lead),
        cov=family_of(params).permute(params.cov, perm),
        weights=np.take_along_axis(weights, perm, lead),
    )


def _log_resp(params: MixtureParams, data: Any, family: Any) -> Array:
    """Every row's log responsibilities ``log p(z_u = k | x_u, params)``, ``(n, K)``."""
    log_joint, _ = data.log_joint(params, family)
    return log_joint - logsumexp(log_joint, axis=1, keepdims=True)


@functools.partial(jax.jit, static_argnames=("family",))
@highest
def _chunk_costs(chunks: MixtureParams, resp_ref: Array, data: Any, family: Any) -> Array:
    """The costs of :func:`responsibility_costs` for draws in chunks (leading axes ``(m, c)``):
    ``lax.map`` over the chunks of a ``vmap`` over each chunk's draws."""

    def one(params):
        log_resp = jnp.maximum(_log_resp(params, data, family), LOG_RESP_FLOOR)
        return -(log_resp.T @ resp_ref)  # (K draw, K reference)

    return lax.map(jax.vmap(one), chunks)


@functools.partial(jax.jit, static_argnames=("family",))
@highest
def _responsibilities(params: MixtureParams, data: Any, family: Any) -> Array:
    return data.e_step_stats(params, family, with_stats=False).resp


def responsibility_costs(
    draws: MixtureParams, reference: MixtureParams, data: Any, chunk: int = RELABEL_CHUNK
) -> np.ndarray:
    """The cost of labelling each draw's component ``j`` as the reference's component ``k``: how
    badly ``j`` explains the rows the reference gives to ``k``.

    .. math::

        c_{jk} = -\\sum_u r^{ref}_{uk} \\log p(z_u = j \\mid x_{u,C_u}, \\theta^{draw})

    (the fixed-reference step of Stephens 2000, "Dealing with label switching in mixture
    models", JRSS B 62: the Kullback-Leibler divergence of the draw's classification from the
    reference's, up to a constant). One E-step per draw, computed on the device, ``vmap``-ped
    over chunks of ``chunk`` draws inside one compiled ``lax.map`` (never more than
    ``chunk * n * K`` responsibilities at once); log responsibilities are floored at
    :data:`LOG_RESP_FLOOR`.

    Args:
        draws: Parameters with one leading batch axis ``B`` (``mu`` ``(B, K, d)``), in the units
            of ``data``.
        reference: Unbatched parameters of the same family and units.
        data: A dense layout's device arrays (:meth:`jaxmix.data.DenseArrays.log_joint`;
            padding rows carry no responsibility).
        chunk: Draws per compiled E-step (static).

    Returns:
        ``cost`` ``(B, K, K)`` float64, ``cost[b, j, k]`` for draw component ``j`` and reference
        component ``k``.
    """
    family = family_of(reference)
    dtype = data.dtype
    reference = as_device(reference, dtype)
    draws = as_device(draws, dtype)
    B = draws.weights.shape[0]
    c = max(1, min(chunk, B))
    m = -(-B // c)
    pad = m * c - B

    def chunked(a):
        a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a
        return a.reshape(m, c, *a.shape[1:])

    resp_ref = _responsibilities(reference, data, family)
    cost = _chunk_costs(jax.tree.map(chunked, draws), resp_ref, data, family)
    cost = np.asarray(cost, np.float64).reshape(m * c, *cost.shape[2:])
    return cost[:B]


def match_responsibilities(
    draws: MixtureParams, reference: MixtureParams, data: Any, chunk: int = RELABEL_CHUNK
) -> np.ndarray:
    """The permutation of every draw of least :func:`responsibility_costs` (Hungarian algorithm).

    Args:
        draws: Parameters with any leading batch shape ``B``, in the units of ``data``.
        reference: Unbatched parameters of the same family and units.
        data: A layout's device arrays.
        chunk: Draws per compiled E-step.

    Returns:
        ``perm`` ``(*B, K)``: component ``perm[..., k]`` of a draw is the reference's ``k``.
    """
    batch = np.shape(draws.weights)[:-1]
    flat = jax.tree.map(lambda a: jnp.reshape(a, (-1, *np.shape(a)[len(batch) :])), draws)
    perm = _least_cost(responsibility_costs(flat, reference, data, chunk))
    return perm.reshape(*batch, perm.shape[-1])


def relabel(
    draws: MixtureParams,
    reference: MixtureParams,
    X: Any = None,
    *,
    mask: Any = None,
) -> tuple[MixtureParams, np.ndarray]:
    """Permute the components of every draw to best match a reference solution.

    The mixture's posterior is invariant under permutations of the components, so a sampler may
    swap labels. Each draw is matched to the reference by the permutation of least total cost
    ``sum_k c_{pi(k), k}`` (Hungarian algorithm), with one of two costs:

    * **by the data** (``X`` given; what :func:`jaxmix.fit_mcmc` does): how badly the draw's
      component ``j`` explains the rows the reference gives to component ``k``,

      .. math::

          c_{jk} = -\\sum_u r^{ref}_{uk} \\log p(z_u = j \\mid x_{u,C_u}, \\theta^{draw}),

      with ``r^ref`` the reference's responsibilities (a fixed-reference step of Stephens 2000,
      :func:`responsibility_costs`). A component that explains no row (an emptied one, whose
      parameters are draws of the prior) costs nothing wherever the reference explains no row
      either, so it cannot displace a component that does.
    * **by the parameters** (``X`` is ``None``): the squared distance of the draw's mean to the
      reference's in units of the reference's variances,

      .. math::

          c_{jk} = \\sum_l \\frac{(\\mu^{draw}_{jl} - \\mu^{ref}_{kl})^2}{\\Sigma^{ref}_{k,ll}}

      (:func:`match_components`): no data needed, but an emptied component whose prior-drawn
      mean happens to sit near a reference component, or a reference component of tiny
      variance, can pull a wrong match.

    Args:
        draws: Parameters with any leading batch shape ``B``: ``mu`` ``(*B, K, d)``, the family's
            parameters, ``weights`` ``(*B, K)``.
        reference: Unbatched parameters of the same family.
        X: Optional data ``(n, d)`` (``NaN`` = missing) or a :class:`~jaxmix.SparseRatings`
            (made dense: the log responsibilities come from the dense layout's ``log_joint``),
            in the units of the parameters: match by the data's responsibilities.
        mask: Optional boolean ``(n, d)``, ``True`` = observed (with ``X``).

    Returns:
        ``(relabelled, permutation)``: the permuted draws (same shapes, float64) and the
        permutation ``(*B, K)``, with ``relabelled[..., k] = draws[..., permutation[..., k]]``.

    Example:
        >>> import numpy as np, jaxmix
        >>> ref = jaxmix.MixtureParams(np.array([[0.0], [5.0]]), np.ones(2), np.array([0.3, 0.7]))
        >>> draw = jaxmix.MixtureParams(np.array([[[5.1], [0.2]]]), np.ones((1, 2)),
        ...                             np.array([[0.68, 0.32]]))
        >>> out, perm = jaxmix.relabel(draw, ref)
        >>> perm.tolist(), out.weights.tolist()
        ([[1, 0]], [[0.32, 0.68]])
        >>> X = np.array([[0.1], [-0.3], [5.2], [4.7], [np.nan]])
        >>> jaxmix.relabel(draw, ref, X)[1].tolist()
        [[1, 0]]
    """
    reference = jax.tree.map(lambda a: np.asarray(a, np.float64), as_params(reference))
    draws = jax.tree.map(lambda a: np.asarray(a, np.float64), as_params(draws))
    family = family_of(reference)
    K, d = reference.mu.shape
    batch = draws.weights.shape[:-1]
    if draws.weights.shape[-1] != K or draws.mu.shape != (*batch, K, d):
        raise ValueError(
            f"draws have mu {draws.mu.shape} and weights {draws.weights.shape}; the reference has "
            f"K={K}, d={d}"
        )
    if X is None:
        precision = 1.0 / np.asarray(family.var_kd(reference.cov, K, d), np.float64)
        perm = match_components(reference.mu, draws.mu.reshape(-1, K, d), precision)
        perm = perm.reshape(*batch, K)
    else:
        layout = as_data(X, mask, "dense", what="relabel")
        if layout.shape[1] != d:
            raise ValueError(f"X has {layout.shape[1]} columns; the reference has d={d}")
        std = Standardizer.fit(layout.summary())
        data = layout.device(std, float_dtype())
        perm = match_responsibilities(to_internal(draws, std), to_internal(reference, std), data)
    return permute_components(draws, perm), perm
