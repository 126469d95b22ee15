"""Expectation-maximisation for the spherical Gaussian mixture on a partially observed matrix.

The algorithm is a pair of pure functions over a typed state, :func:`init` and :func:`step`; the
loop runs inside XLA (``lax.while_loop``) and the restarts are batched with ``vmap`` into one
compiled call. Each restart stops on its own criterion: once it has converged the batched loop
keeps its state frozen, so its result is exactly that of a single run.

One iteration (the reference's loop order):

1. E-step at the current parameters: responsibilities ``p(k | u)`` and the log-likelihood.
2. M-step from those responsibilities.
3. Stop when ``LL_new - LL_old <= tol * |LL_new|`` (log-likelihoods of successive E-steps).

The M-step (with ``n_k = sum_u p(k|u)``):

.. math::

    \\mu_{kl} = \\frac{\\sum_u p(k|u) [l \\in C_u] x_{ul}}{\\sum_u p(k|u) [l \\in C_u]}
    \\quad\\text{(only where the denominator is at least 1)},\\qquad
    \\mathrm{var}_k = \\max\\Big(\\frac{\\sum_u p(k|u) \\lVert x_{u,C_u}-\\mu_{k,C_u}\\rVert^2}
        {\\sum_u |C_u|\\, p(k|u)}, \\mathrm{min\\_var}\\Big),\\qquad w_k = n_k / n.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import logsumexp

from jaxmix._data import (
    MaskedData,
    Standardizer,
    check_n_components,
    check_nonneg_float,
    check_positive_int,
    float_dtype,
    validate_matrix,
)
from jaxmix.inference.init import init_params
from jaxmix.models.mixture import component_log_joint
from jaxmix.types import EMResult, MixtureParams

__all__ = ["EMState", "SuffStats", "e_step", "fit_em", "init", "m_step", "step", "suff_stats"]

_HI = lax.Precision.HIGHEST


class SuffStats(NamedTuple):
    """Expected sufficient statistics of one E-step.

    Attributes:
        n_k: ``sum_u p(k|u)``, shape ``(K,)``.
        obs_k: ``sum_u p(k|u) [l in C_u]``, shape ``(K, d)``.
        sum_k: ``sum_u p(k|u) [l in C_u] x_ul``, shape ``(K, d)``.
        sq_k: ``sum_u p(k|u) |x_{u,C_u}|^2``, shape ``(K,)``.
        n_obs_k: ``sum_u p(k|u) |C_u|``, shape ``(K,)``.
        n_rows: Number of rows ``n`` (a scalar).
    """

    n_k: Array
    obs_k: Array
    sum_k: Array
    sq_k: Array
    n_obs_k: Array
    n_rows: Array


class EMState(NamedTuple):
    """State of one EM run.

    Attributes:
        params: Current parameters (after the latest M-step).
        resp: Responsibilities from the latest E-step, shape ``(n, K)``.
        log_likelihood: Log-likelihood from the latest E-step (``-inf`` before the first).
        n_iter: Iterations done.
        history: Log-likelihood of every E-step, shape ``(max_iter,)``; zero past ``n_iter``.
        converged: Whether the stopping rule has fired.
    """

    params: MixtureParams
    resp: Array
    log_likelihood: Array
    n_iter: Array
    history: Array
    converged: Array


def e_step(params: MixtureParams, data: MaskedData) -> tuple[Array, Array]:
    """Responsibilities and observed-data log-likelihood.

    Args:
        params: ``mu`` ``(K, d)``, ``var`` ``(K,)``, ``weights`` ``(K,)``.
        data: The masked matrix, ``n`` rows.

    Returns:
        ``(resp, log_likelihood)``: ``resp`` of shape ``(n, K)`` (rows sum to one; a row with no
        observed entry gets the weights) and the scalar sum of the rows' log-likelihoods.
    """
    log_joint = component_log_joint(params, data)
    row_ll = logsumexp(log_joint, axis=1, keepdims=True)
    return jnp.exp(log_joint - row_ll), jnp.sum(row_ll)


def suff_stats(resp: Array, data: MaskedData) -> SuffStats:
    """Expected sufficient statistics from responsibilities ``(n, K)`` (two matrix products)."""
    return SuffStats(
        n_k=jnp.sum(resp, axis=0),
        obs_k=jnp.matmul(resp.T, data.mask, precision=_HI),
        sum_k=jnp.matmul(resp.T, data.x, precision=_HI),
        sq_k=jnp.matmul(resp.T, data.sq_norm, precision=_HI),
        n_obs_k=jnp.matmul(resp.T, data.n_obs, precision=_HI),
        n_rows=jnp.asarray(data.x.shape[0], resp.dtype),
    )


def m_step(stats: SuffStats, params: MixtureParams, min_var: Array | float) -> MixtureParams:
    """Maximum-likelihood update of the parameters from sufficient statistics.

    A mean coordinate moves only where its expected count ``obs_k`` is at least one; a component
    with no expected observed entry keeps its variance. Variances are floored at ``min_var`` and,
    so that a fit never degenerates, at the dtype's machine epsilon.

    Args:
        stats: Output of :func:`suff_stats`.
        params: The parameters before the update (kept where there is too little data).
        min_var: Variance floor.

    Returns:
        The updated :class:`MixtureParams`.
    """
    update = stats.obs_k >= 1.0
    mu = jnp.where(update, stats.sum_k / jnp.where(update, stats.obs_k, 1.0), params.mu)
    # sum_u p(k|u) |x_{u,C_u} - mu_{k,C_u}|^2 expanded around the new means.
    resid = stats.sq_k - 2.0 * jnp.sum(mu * stats.sum_k, axis=1) + jnp.sum(mu * mu * stats.obs_k, axis=1)
    has_obs = stats.n_obs_k > 0
    var = jnp.where(
        has_obs, jnp.maximum(resid, 0.0) / jnp.where(has_obs, stats.n_obs_k, 1.0), params.var
    )
    eps = jnp.finfo(var.dtype).eps
    var = jnp.maximum(jnp.maximum(var, min_var), eps)
    return MixtureParams(mu=mu, var=var, weights=stats.n_k / stats.n_rows)


def init(params: MixtureParams, data: MaskedData, max_iter: int) -> EMState:
    """The state before the first iteration."""
    dtype = data.x.dtype
    n, K = data.x.shape[0], params.weights.shape[0]
    return EMState(
        params=MixtureParams(*(jnp.asarray(p, dtype) for p in params)),
        resp=jnp.zeros((n, K), dtype),
        log_likelihood=jnp.asarray(-jnp.inf, dtype),
        n_iter=jnp.asarray(0, jnp.int32),
        history=jnp.zeros((max_iter,), dtype),
        converged=jnp.asarray(False),
    )


def step(
    state: EMState,
    data: MaskedData,
    tol: Array | float,
    min_var: Array | float,
    ll_shift: Array | float = 0.0,
) -> EMState:
    """One E-step and M-step, then the stopping rule.

    Args:
        state: Current state.
        data: The masked matrix.
        tol: Relative tolerance of the stopping rule.
        min_var: Variance floor.
        ll_shift: Constant added to the log-likelihood before the stopping rule (maps a
            standardised log-likelihood to data units).

    Returns:
        The next state.
    """
    resp, ll = e_step(state.params, data)
    ll = ll + ll_shift
    params = m_step(suff_stats(resp, data), state.params, min_var)
    converged = (state.n_iter > 0) & (ll - state.log_likelihood <= tol * jnp.abs(ll))
    return EMState(
        params=params,
        resp=resp,
        log_likelihood=ll,
        n_iter=state.n_iter + 1,
        history=state.history.at[state.n_iter].set(ll),
        converged=converged,
    )


_trace_count = 0  # incremented each time the batched fit is traced (tests check recompilation)


def _run(params, data, tol, min_var, ll_shift, max_iter, progress):
    def cond(state):
        return ~state.converged & (state.n_iter < max_iter) & jnp.isfinite(state.log_likelihood)

    def body(state):
        new = step(state, data, tol, min_var, ll_shift)
        if progress:
            jax.debug.callback(_progress_callback, new.n_iter, new.log_likelihood)
        return new

    first = step(init(params, data, max_iter), data, tol, min_var, ll_shift)
    return lax.while_loop(cond, body, first)


@functools.partial(jax.jit, static_argnames=("max_iter", "progress"))
def _fit_batched(params, data, tol, min_var, ll_shift, *, max_iter, progress=False):
    global _trace_count
    _trace_count += 1
    run = functools.partial(_run, max_iter=max_iter, progress=progress)
    return jax.vmap(run, in_axes=(0, None, None, None, None))(params, data, tol, min_var, ll_shift)


_progress_bar: Any = None


def _progress_callback(n_iter, log_likelihood):
    if _progress_bar is not None:
        it = int(np.max(n_iter))
        if it > _progress_bar.n:
            _progress_bar.update(it - _progress_bar.n)
            _progress_bar.set_postfix(ll=f"{float(np.max(log_likelihood)):.6g}", refresh=False)


def fit_em(
    X: Any,
    K: int,
    *,
    mask: Any = None,
    n_init: int = 1,
    seed: int = 0,
    init: Any = "kmeans++",
    tol: float = 1e-6,
    max_iter: int = 1000,
    min_var: float = 0.25,
    progress: bool = False,
) -> EMResult:
    """Fit a spherical Gaussian mixture to a partially observed matrix by EM.

    Only the observed entries enter the likelihood (see :mod:`jaxmix.models.mixture`). All
    restarts run in one compiled call; the one with the highest final log-likelihood wins.
    Computation happens in JAX's default float dtype (float64 only if the user enabled
    ``jax_enable_x64``) on a standardised copy of the data; results come back in data units as
    float64 NumPy arrays.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry. Rows with no observed entry are
            allowed (their responsibilities are the weights).
        K: Number of components, ``1 <= K <= n``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed; overrides the ``NaN`` convention.
        n_init: Number of restarts; restart ``r`` uses seed ``seed + r``.
        seed: Base seed.
        init: ``"kmeans++"`` (default), ``"random_rows"`` (the reference initialisation,
            reproducing the course's numbers), explicit :class:`~jaxmix.MixtureParams` (optionally
            batched over restarts ``(R, K, ...)``) or a previous result.
        tol: Relative tolerance: stop when ``LL_new - LL_old <= tol * |LL_new|``.
        max_iter: Iteration cap per restart.
        min_var: Floor on every variance (data units).
        progress: Show a progress bar of the batched iterations.

    Returns:
        An :class:`~jaxmix.EMResult`.

    Raises:
        TypeError, ValueError: On malformed input (see :func:`jaxmix.validate_matrix`).

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> res = jaxmix.fit_em(X, 2, n_init=2, min_var=0.01)
        >>> res.mu.shape, res.resp.shape
        ((2, 2), (4, 2))
    """
    values, observed = validate_matrix(X, mask)
    K = check_n_components(K, values.shape[0])
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    seed = _check_seed(seed)
    tol = check_nonneg_float(tol, "tol")
    min_var = check_nonneg_float(min_var, "min_var")

    start = init_params(init, values, observed, K, n_init=n_init, seed=seed, min_var=min_var)
    std = Standardizer.fit(values, observed)
    data = std.data(values, observed)
    dtype = data.x.dtype
    start_internal = std.to_internal(start)
    shift = std.log_likelihood_shift(observed)

    global _progress_bar
    if progress:
        from tqdm.auto import tqdm

        _progress_bar = tqdm(total=max_iter, desc=f"EM K={K} x{start.mu.shape[0]}", unit="it")
    try:
        final = _fit_batched(
            MixtureParams(*(jnp.asarray(p, dtype) for p in start_internal)),
            data,
            jnp.asarray(tol, dtype),
            jnp.asarray(min_var / std.scale**2, dtype),
            jnp.asarray(shift, dtype),
            max_iter=max_iter,
            progress=progress,
        )
        final = jax.device_get(final)
    finally:
        if progress and _progress_bar is not None:
            _progress_bar.close()
            _progress_bar = None
    return _to_result(final, std, min_var)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer; got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative; got {seed}")
    return int(seed)


def _to_result(final: EMState, std: Standardizer, min_var: float) -> EMResult:
    lls = np.asarray(final.log_likelihood, np.float64)
    if not np.all(np.isfinite(lls)) or not np.all(np.isfinite(final.params.mu)):
        raise FloatingPointError(
            "EM produced a non-finite log-likelihood; the data may be too extreme for "
            f"{float_dtype()} (enable jax_enable_x64 for float64)"
        )
    best = int(np.argmax(lls))
    n_iter = int(final.n_iter[best])
    params = std.to_data(MixtureParams(*(np.asarray(p)[best] for p in final.params)))
    return EMResult(
        params=params,
        log_likelihood=float(lls[best]),
        objective=float(lls[best]),
        restart_log_likelihoods=lls,
        best_restart=best,
        n_iter=n_iter,
        converged=bool(final.converged[best]),
        history=np.asarray(final.history[best, :n_iter], np.float64),
        resp=np.asarray(final.resp[best], np.float64),
        restart_n_iter=np.asarray(final.n_iter),
        restart_converged=np.asarray(final.converged),
        covariance="spherical",
        min_var=min_var,
    )
