"""Expectation-maximisation for the Gaussian mixture on a partially observed matrix.

The algorithm is a pair of pure functions over a typed state, :func:`init` and :func:`step`; the
loop runs inside XLA (``lax.while_loop``) and the restarts are batched with ``vmap`` into one
compiled call. Each restart stops on its own criterion: once it has converged the batched loop
keeps its state frozen, so its result is exactly that of a single run.

It maximises the objective ``log p(X | params) + log p(params)`` of the model
:func:`jaxmix.models.mixture_model`: the log-likelihood alone without a prior (maximum
likelihood, the reference), the log posterior density with a :class:`~jaxmix.Prior` (MAP-EM).
One iteration (the reference's loop order):

1. E-step at the current parameters: responsibilities ``p(k | u)`` and the objective.
2. M-step from those responsibilities.
3. Stop when ``obj_new - obj_old <= tol * |obj_new|`` (objectives of successive E-steps).

The maximum-likelihood M-step (with ``n_k = sum_u p(k|u)``), spherical family:

.. math::

    \\mu_{kl} = \\frac{\\sum_u p(k|u) [l \\in C_u] x_{ul}}{\\sum_u p(k|u) [l \\in C_u]}
    \\quad\\text{(only where the denominator is at least 1)},\\qquad
    \\mathrm{var}_k = \\max\\Big(\\frac{\\sum_u p(k|u) \\lVert x_{u,C_u}-\\mu_{k,C_u}\\rVert^2}
        {\\sum_u |C_u|\\, p(k|u)}, \\mathrm{min\\_var}\\Big),\\qquad w_k = n_k / n;

the diagonal family has ``var_kl`` = the same ratio restricted to column ``l``. With a prior the
M-step is a conditional (ECM) maximisation of the expected complete-data log posterior, each
piece in closed form: ``mu`` given the current ``var``, then ``var`` given the new ``mu``, then the
weights:

.. math::

    \\mu_{kl} = \\frac{m_{0,l}/s_{0,l}^2 + \\sum_u p(k|u)[l \\in C_u] x_{ul} / \\mathrm{var}_{k(l)}}
        {1/s_{0,l}^2 + \\sum_u p(k|u)[l \\in C_u] / \\mathrm{var}_{k(l)}},\\qquad
    \\mathrm{var}_{k(l)} = \\max\\Big(\\frac{S_{k(l)} + 2b}{N_{k(l)} + 2a + 2},
        \\mathrm{min\\_var}\\Big), \\qquad w_k = \\frac{n_k + \\alpha - 1}{n + K(\\alpha - 1)}

with ``S`` the expected squared residual and ``N`` the expected number of observed entries (per
component, or per component and column for ``"diag"``). Every piece maximises its conditional
exactly (the floor ``min_var`` makes the variance step the maximum over ``var >= min_var``, the
objective being unimodal in each variance), so the objective never decreases once the variances
are feasible (``"kmeans++"`` floors its start at ``min_var``; ``"random_rows"`` does not). Every
mean moves (the prior makes its update well defined without data).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
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
    masked_data,
    validate_matrix,
)
from jaxmix.inference.init import init_params
from jaxmix.models.mixture import (
    COVARIANCES,
    component_log_joint,
    covariance_of,
    log_prior,
    objective,
)
from jaxmix.priors import (
    Prior,
    log_prior_shift,
    resolve_prior,
    standardize_prior,
)
from jaxmix.sparse import SparseRatings
from jaxmix.types import EMResult, MixtureParams

__all__ = [
    "AUTO_MIN_ENTRIES",
    "EMState",
    "METHODS",
    "SPARSE_CROSSOVER_DENSITY",
    "SuffStats",
    "e_step",
    "fit_em",
    "init",
    "log_objective",
    "m_step",
    "step",
    "suff_stats",
]

_HI = lax.Precision.HIGHEST

METHODS = ("auto", "dense", "sparse")
#: ``method="auto"`` takes the sparse path for a dense array whose share of observed entries is
#: below this: the crossover measured by ``benchmarks/dense_vs_sparse.py`` at the course size
#: (1200 x 1200, K = 12, float32, 2-core CPU: 0.027; the triples cost about 20 times more per
#: entry than the dense matrix products) ...
SPARSE_CROSSOVER_DENSITY = 0.03
#: ... and that has at least this many entries (below it the dense path is fast anyway).
AUTO_MIN_ENTRIES = 1 << 20


class SuffStats(NamedTuple):
    """Expected sufficient statistics of one E-step.

    Attributes:
        n_k: ``sum_u p(k|u)``, shape ``(K,)``.
        obs_k: ``sum_u p(k|u) [l in C_u]``, shape ``(K, d)``.
        sum_k: ``sum_u p(k|u) [l in C_u] x_ul``, shape ``(K, d)``.
        sq_k: ``sum_u p(k|u) |x_{u,C_u}|^2``, shape ``(K,)``.
        n_obs_k: ``sum_u p(k|u) |C_u|``, shape ``(K,)``.
        n_rows: Number of rows ``n`` (a scalar).
        sq_kl: ``sum_u p(k|u) [l in C_u] x_ul^2``, shape ``(K, d)``; only for ``"diag"`` (``None``
            for ``"spherical"``, which does not need the extra matrix product).
    """

    n_k: Array
    obs_k: Array
    sum_k: Array
    sq_k: Array
    n_obs_k: Array
    n_rows: Array
    sq_kl: Array | None = None


class EMState(NamedTuple):
    """State of one EM run.

    Attributes:
        params: Current parameters (after the latest M-step).
        resp: Responsibilities from the latest E-step, shape ``(n, K)``.
        log_likelihood: Log-likelihood from the latest E-step (``-inf`` before the first).
        n_iter: Iterations done.
        history: Objective of every E-step, shape ``(max_iter,)``; zero past ``n_iter``.
        converged: Whether the stopping rule has fired.
        objective: Log-likelihood + log-prior from the latest E-step (``-inf`` before the
            first); equal to ``log_likelihood`` without a prior.
    """

    params: MixtureParams
    resp: Array
    log_likelihood: Array
    n_iter: Array
    history: Array
    converged: Array
    objective: Array


def e_step(params: MixtureParams, data: MaskedData) -> tuple[Array, Array]:
    """Responsibilities and observed-data log-likelihood.

    Args:
        params: ``mu`` ``(K, d)``, ``var`` ``(K,)`` (spherical) or ``(K, d)`` (diag),
            ``weights`` ``(K,)``.
        data: The masked matrix, ``n`` rows.

    Returns:
        ``(resp, log_likelihood)``: ``resp`` of shape ``(n, K)`` (rows sum to one; a row with no
        observed entry gets the weights) and the scalar sum of the rows' log-likelihoods.
    """
    log_joint = component_log_joint(params, data)
    row_ll = logsumexp(log_joint, axis=1, keepdims=True)
    return jnp.exp(log_joint - row_ll), jnp.sum(row_ll)


def suff_stats(resp: Array, data: MaskedData, covariance: str = "spherical") -> SuffStats:
    """Expected sufficient statistics from responsibilities ``(n, K)``.

    Two matrix products (``obs_k``, ``sum_k``), a third (``sq_kl``) for ``"diag"``.

    Args:
        resp: Responsibilities, shape ``(n, K)``.
        data: The masked matrix.
        covariance: ``"spherical"`` or ``"diag"`` (static).

    Returns:
        A :class:`SuffStats`.
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}; got {covariance!r}")
    sq_kl = None
    if covariance == "diag":
        sq_kl = jnp.matmul(resp.T, data.x * data.x, precision=_HI)
    return SuffStats(
        n_k=jnp.sum(resp, axis=0),
        obs_k=jnp.matmul(resp.T, data.mask, precision=_HI),
        sum_k=jnp.matmul(resp.T, data.x, precision=_HI),
        sq_k=jnp.matmul(resp.T, data.sq_norm, precision=_HI),
        n_obs_k=jnp.matmul(resp.T, data.n_obs, precision=_HI),
        n_rows=jnp.asarray(data.x.shape[0], resp.dtype),
        sq_kl=sq_kl,
    )


def m_step(
    stats: SuffStats,
    params: MixtureParams,
    min_var: Array | float,
    prior: Prior | None = None,
) -> MixtureParams:
    """Maximum-likelihood or MAP update of the parameters from sufficient statistics.

    The covariance family is that of ``params.var`` (``(K,)`` spherical, ``(K, d)`` diag).

    Without a prior (maximum likelihood, the reference): a mean coordinate moves only where its
    expected count ``obs_k`` is at least one; a variance with no expected observed entry is kept.
    With a prior: the conditional maximisers of the module docstring (``mu`` given the old
    ``var``, ``var`` given the new ``mu``, the weights), every coordinate updated. In both cases the
    variances are floored at ``min_var`` and, so that a fit never degenerates, at the dtype's
    machine epsilon.

    Args:
        stats: Output of :func:`suff_stats` (with ``sq_kl`` for the diag family).
        params: The parameters before the update.
        min_var: Variance floor.
        prior: A resolved :class:`~jaxmix.Prior` in the units of ``stats`` (see
            :func:`fit_em`), or ``None`` for maximum likelihood.

    Returns:
        The updated :class:`MixtureParams`.
    """
    diag = covariance_of(params.var) == "diag"
    if diag and stats.sq_kl is None:
        raise ValueError("diag m_step needs SuffStats.sq_kl: call suff_stats(..., 'diag')")
    if prior is None:
        update = stats.obs_k >= 1.0
        mu = jnp.where(update, stats.sum_k / jnp.where(update, stats.obs_k, 1.0), params.mu)
    else:
        alpha, m0, s0, a, b = (jnp.asarray(p, stats.sum_k.dtype) for p in prior)
        var_old = params.var if diag else params.var[:, None]
        prec0 = 1.0 / (s0 * s0)
        mu = (m0 * prec0 + stats.sum_k / var_old) / (prec0 + stats.obs_k / var_old)
    # Expected squared residual around the new means, expanded (per column for diag).
    if diag:
        resid = stats.sq_kl - 2.0 * mu * stats.sum_k + mu * mu * stats.obs_k
        count = stats.obs_k
    else:
        resid = (
            stats.sq_k
            - 2.0 * jnp.sum(mu * stats.sum_k, axis=1)
            + jnp.sum(mu * mu * stats.obs_k, axis=1)
        )
        count = stats.n_obs_k
    resid = jnp.maximum(resid, 0.0)
    if prior is None:
        has_obs = count > 0
        var = jnp.where(has_obs, resid / jnp.where(has_obs, count, 1.0), params.var)
        weights = stats.n_k / stats.n_rows
    else:
        var = (resid + 2.0 * b) / (count + 2.0 * a + 2.0)
        K = stats.n_k.shape[0]
        weights = (stats.n_k + alpha - 1.0) / (stats.n_rows + K * (alpha - 1.0))
    eps = jnp.finfo(var.dtype).eps
    var = jnp.maximum(jnp.maximum(var, min_var), eps)
    return MixtureParams(mu=mu, var=var, weights=weights)


def init(params: MixtureParams, data: MaskedData, max_iter: int) -> EMState:
    """The state before the first iteration."""
    return init_state(params, data.x.shape[0], data.x.dtype, max_iter)


def init_state(params: MixtureParams, n_rows: int, dtype: Any, max_iter: int) -> EMState:
    """The state before the first iteration, for ``n_rows`` rows of responsibilities (shared by
    the dense and the sparse path, :mod:`jaxmix.inference.sparse_em`)."""
    n, K = n_rows, params.weights.shape[0]
    return EMState(
        params=MixtureParams(*(jnp.asarray(p, dtype) for p in params)),
        resp=jnp.zeros((n, K), dtype),
        log_likelihood=jnp.asarray(-jnp.inf, dtype),
        n_iter=jnp.asarray(0, jnp.int32),
        history=jnp.zeros((max_iter,), dtype),
        converged=jnp.asarray(False),
        objective=jnp.asarray(-jnp.inf, dtype),
    )


def step(
    state: EMState,
    data: MaskedData,
    tol: Array | float,
    min_var: Array | float,
    ll_shift: Array | float = 0.0,
    prior: Prior | None = None,
    prior_shift: Array | float = 0.0,
) -> EMState:
    """One E-step and M-step, then the stopping rule.

    Args:
        state: Current state.
        data: The masked matrix.
        tol: Relative tolerance of the stopping rule (on the objective).
        min_var: Variance floor.
        ll_shift: Constant added to the log-likelihood (maps a standardised log-likelihood to data
            units).
        prior: A resolved :class:`~jaxmix.Prior` in the units of ``data``, or ``None``.
        prior_shift: Constant added to the log-prior (maps it to data units).

    Returns:
        The next state.
    """
    covariance = covariance_of(state.params.var)
    resp, ll = e_step(state.params, data)
    stats = suff_stats(resp, data, covariance)
    return advance(state, resp, ll, stats, tol, min_var, ll_shift, prior, prior_shift)


def advance(
    state: EMState,
    resp: Array,
    ll: Array,
    stats: SuffStats,
    tol: Array | float,
    min_var: Array | float,
    ll_shift: Array | float = 0.0,
    prior: Prior | None = None,
    prior_shift: Array | float = 0.0,
) -> EMState:
    """The rest of an iteration once the E-step is done: objective, M-step, stopping rule.

    Shared by the dense :func:`step` and the sparse path (whose E-step and statistics come from
    the triples), so both run exactly the same update.

    Args:
        state: State before the iteration (its ``params`` are those of the E-step).
        resp: Responsibilities of the E-step (stored in the state as they are).
        ll: Log-likelihood of the E-step (before ``ll_shift``).
        stats: Sufficient statistics of the E-step.
        tol, min_var, ll_shift, prior, prior_shift: As in :func:`step`.

    Returns:
        The next state.
    """
    ll = ll + ll_shift
    obj = ll + (log_prior(state.params, prior) + prior_shift if prior is not None else 0.0)
    params = m_step(stats, state.params, min_var, prior)
    converged = (state.n_iter > 0) & (obj - state.objective <= tol * jnp.abs(obj))
    return EMState(
        params=params,
        resp=resp,
        log_likelihood=ll,
        n_iter=state.n_iter + 1,
        history=state.history.at[state.n_iter].set(obj),
        converged=converged,
        objective=obj,
    )


_trace_count = 0  # incremented each time the batched fit is traced (tests check recompilation)


def _run(params, data, tol, min_var, ll_shift, prior, prior_shift, max_iter, progress):
    def one(state):
        return step(state, data, tol, min_var, ll_shift, prior, prior_shift)

    return loop(one, init(params, data, max_iter), max_iter, progress)


def loop(one: Any, state: EMState, max_iter: int, progress: bool = False) -> EMState:
    """Run ``one`` (a state -> state iteration) from ``state`` inside ``lax.while_loop`` until the
    stopping rule fires, ``max_iter`` iterations are done or the objective is not finite (the
    first iteration always runs). Shared by the dense and the sparse path."""

    def cond(state):
        return ~state.converged & (state.n_iter < max_iter) & jnp.isfinite(state.objective)

    def body(state):
        new = one(state)
        if progress:
            jax.debug.callback(_progress_callback, new.n_iter, new.objective)
        return new

    return lax.while_loop(cond, body, one(state))


@functools.partial(jax.jit, static_argnames=("max_iter", "progress"))
def _fit_batched(
    params, data, tol, min_var, ll_shift, prior=None, prior_shift=0.0, *, max_iter, progress=False
):
    global _trace_count
    _trace_count += 1
    run = functools.partial(_run, max_iter=max_iter, progress=progress)
    return jax.vmap(run, in_axes=(0, None, None, None, None, None, None))(
        params, data, tol, min_var, ll_shift, prior, prior_shift
    )


_progress_bar: Any = None


def _progress_callback(n_iter, objective):
    if _progress_bar is not None:
        it = int(np.max(n_iter))
        if it > _progress_bar.n:
            _progress_bar.update(it - _progress_bar.n)
            _progress_bar.set_postfix(obj=f"{float(np.max(objective)):.6g}", refresh=False)


@contextlib.contextmanager
def progress_bar(active: bool, description: str) -> Iterator[None]:
    """Show a tqdm bar of the batched EM iterations while the body runs (if ``active``).

    The compiled loop reports to it through ``jax.debug.callback``; the bar has no fixed total
    (EM stops on its own criterion) and is closed, showing the iterations run, on exit.
    """
    global _progress_bar
    if not active:
        yield
        return
    from tqdm.auto import tqdm

    _progress_bar = tqdm(desc=description, unit="it")
    try:
        yield
    finally:
        _progress_bar.close()
        _progress_bar = None


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
    prior: Prior | None = None,
    covariance: str = "spherical",
    method: str = "auto",
    chunk_size: int | None = None,
    mesh: Any = None,
) -> EMResult:
    """Fit a Gaussian mixture to a partially observed matrix by (MAP-)EM.

    Only the observed entries enter the likelihood (see :mod:`jaxmix.models.mixture`). Without a
    prior this is maximum-likelihood EM (the reference algorithm); with a :class:`~jaxmix.Prior` it
    maximises ``log-likelihood + log-prior`` of :func:`jaxmix.models.mixture_model` (MAP-EM, closed
    form conditional M-steps). All restarts run in one compiled call; the one with the highest final
    objective wins. Computation happens in JAX's default float dtype (float64 only if the user
    enabled ``jax_enable_x64``) on a standardised copy of the data; results come back in data units
    as float64 NumPy arrays.

    Standardisation and the prior: the prior is resolved in data units (recorded in
    ``EMResult.prior``) and mapped exactly to the standardised units (Normal and InverseGamma are
    closed under the affine map); the Jacobian of the map is added back, so ``objective`` and
    ``history`` are in data units: ``objective == log_objective(X, params_before_last_M_step,
    prior=result.prior)``.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry. Rows with no observed entry are
            allowed (their responsibilities are the weights).
        K: Number of components, ``1 <= K <= n``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed; overrides the ``NaN`` convention.
        n_init: Number of restarts; restart ``r`` uses seed ``seed + r``.
        seed: Base seed.
        init: ``"kmeans++"`` (default), ``"random_rows"`` (the reference initialisation,
            reproducing the course's numbers), explicit :class:`~jaxmix.MixtureParams` (optionally
            batched over restarts ``(R, K, ...)``) or a previous result. For ``"diag"`` the named
            methods' per-component variance is repeated over the columns, and an explicit spherical
            ``var`` ``(K,)`` is broadcast to ``(K, d)``.
        tol: Relative tolerance: stop when ``obj_new - obj_old <= tol * |obj_new|``.
        max_iter: Iteration cap per restart.
        min_var: Floor on every variance (data units). It applies with a prior too: MAP-EM then
            maximises over ``var >= min_var`` (still monotone). Pass ``min_var=0`` for the
            unconstrained posterior mode (the InverseGamma prior keeps the variances positive).
            Without a prior, ``min_var=0`` lets a component collapse onto a few rows (the
            likelihood is unbounded); its variance then stops at the machine-epsilon floor,
            where rounding can make the log-likelihood dip slightly (measured up to 4e-4
            relative in the diag family): keep a positive floor for maximum likelihood.
        progress: Show a progress bar of the batched iterations.
        prior: ``None`` (maximum likelihood; flat improper priors) or a :class:`~jaxmix.Prior`;
            its ``None`` fields are resolved from ``X`` (:meth:`~jaxmix.Prior.resolve`). MAP-EM
            needs ``alpha >= 1``.
        covariance: ``"spherical"`` (``var`` of shape ``(K,)``) or ``"diag"`` (``(K, d)``).
        method: ``"dense"`` (matrix products over all ``n d`` entries), ``"sparse"`` (sums over
            the observed entries only, :mod:`jaxmix.inference.sparse_em`: ``O(nnz K)`` time and
            ``O(nnz + (n + d) K)`` memory per iteration) or ``"auto"`` (default): sparse for a
            :class:`~jaxmix.SparseRatings` or with a ``mesh``; for a dense array, sparse when it
            has at least :data:`AUTO_MIN_ENTRIES` entries and a share of observed entries below
            :data:`SPARSE_CROSSOVER_DENSITY` (measured by ``benchmarks/dense_vs_sparse.py``).
            Both give the same result up to rounding. ``"dense"`` with a ``SparseRatings``
            materialises the ``n x d`` matrix.
        chunk_size: Sparse path only: observed entries processed at once (bounds the
            ``chunk_size x K`` intermediates; default 32768).
        mesh: Sparse path only: a one-axis ``jax.sharding.Mesh`` (or a list of devices) to split
            the rows over; the sufficient statistics are summed across devices with ``psum``.
            Works across hosts after ``jax.distributed.initialize()`` with a mesh of
            ``jax.devices()``.

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
        >>> res = jaxmix.fit_em(X, 2, prior=jaxmix.Prior(), covariance="diag", min_var=0.01)
        >>> res.var.shape, res.prior.mean_sd.shape
        ((2, 2), (2,))
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    sparse_input = isinstance(X, SparseRatings)
    if sparse_input and mask is not None:
        raise TypeError("mask does not apply to a SparseRatings (its triples are the observed set)")
    if sparse_input and method != "dense":
        return _fit_sparse(X, K, locals())
    if method == "dense" and mesh is not None:
        raise ValueError("mesh needs the sparse path (method='sparse' or 'auto')")
    values, observed = validate_matrix(X.to_dense() if sparse_input else X, mask)
    if method == "sparse" or (
        method == "auto"
        and (
            mesh is not None
            or (values.size >= AUTO_MIN_ENTRIES and observed.mean() < SPARSE_CROSSOVER_DENSITY)
        )
    ):
        return _fit_sparse(SparseRatings.from_dense(values, observed), K, locals())
    K = check_n_components(K, values.shape[0])
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    seed = _check_seed(seed)
    tol = check_nonneg_float(tol, "tol")
    min_var = check_nonneg_float(min_var, "min_var")
    covariance = _check_covariance(covariance)
    if prior is not None:
        prior = resolve_prior(prior, values, observed)
        if prior.alpha < 1.0:
            raise ValueError(
                f"MAP-EM needs Prior.alpha >= 1 (for alpha < 1 the posterior density is unbounded "
                f"at an emptied component); got alpha = {float(prior.alpha)}"
            )

    start = init_params(
        init, values, observed, K, n_init=n_init, seed=seed, min_var=min_var, covariance=covariance
    )
    std = Standardizer.fit(values, observed)
    data = std.data(values, observed)
    dtype = data.x.dtype
    start_internal = std.to_internal(start)
    shift = std.log_likelihood_shift(observed)
    prior_internal, prior_shift = None, 0.0
    if prior is not None:
        internal = standardize_prior(prior, std.offset, std.scale)
        prior_internal = Prior(*(jnp.asarray(p, dtype) for p in internal))
        prior_shift = jnp.asarray(log_prior_shift(K, values.shape[1], covariance, std.scale), dtype)

    with progress_bar(progress, f"EM K={K} x{start.mu.shape[0]}"):
        final = _fit_batched(
            MixtureParams(*(jnp.asarray(p, dtype) for p in start_internal)),
            data,
            jnp.asarray(tol, dtype),
            jnp.asarray(min_var / std.scale**2, dtype),
            jnp.asarray(shift, dtype),
            prior_internal,
            prior_shift,
            max_iter=max_iter,
            progress=progress,
        )
        final = jax.device_get(final)
    return _to_result(final, std, min_var, covariance, prior)


def log_objective(
    X: Any,
    params: Any,
    *,
    mask: Any = None,
    prior: Prior | None = None,
    covariance: str | None = None,
) -> float:
    """The objective EM maximises, at given parameters: log-likelihood + log-prior.

    .. math::

        \\sum_u \\log \\sum_k (w_k + 10^{-16})\\,
            \\mathcal N(x_{u,C_u}; \\mu_{k,C_u}, \\Sigma_{k,C_u}) + \\log p(w, \\mu, \\mathrm{var})

    It is the log density of :func:`jaxmix.models.mixture_model` with the component of every row
    summed out, evaluated directly in data units (no standardisation) in JAX's default float dtype.
    Without a prior it is the observed-data log-likelihood.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries (rows with no observed entry
            contribute ``log sum_k (w_k + 1e-16)``, about 0), or a :class:`~jaxmix.SparseRatings`.
        params: :class:`~jaxmix.MixtureParams` (``mu`` ``(K, d)``, ``var`` ``(K,)`` or ``(K, d)``,
            ``weights`` ``(K,)``) or a fitted result.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        prior: ``None`` or a :class:`~jaxmix.Prior`; ``None`` fields are resolved from ``X`` (pass
            ``EMResult.prior`` to reuse the numbers of a fit).
        covariance: Optional check of the family; by default it is read off ``var``'s shape.

    Returns:
        The objective as a float.

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> res = jaxmix.fit_em(X, 2, prior=jaxmix.Prior(), min_var=0.01)
        >>> obj = jaxmix.log_objective(X, res.params, prior=res.prior)
        >>> bool(obj >= res.objective)
        True
    """
    sparse_input = isinstance(X, SparseRatings)
    if sparse_input:
        if mask is not None:
            raise TypeError("mask does not apply to a SparseRatings")
        if X.nnz == 0:
            raise ValueError("every entry of X is missing; there is nothing to evaluate")
    else:
        values, observed = validate_matrix(X, mask)
    fitted = params if isinstance(params, MixtureParams) else getattr(params, "params", params)
    if not isinstance(fitted, MixtureParams):
        raise TypeError(
            f"params must be MixtureParams or a fitted result; got {type(params).__name__}"
        )
    p = MixtureParams(*(np.asarray(v, np.float64) for v in fitted))
    n, d = X.shape if sparse_input else values.shape
    if p.mu.ndim != 2 or p.mu.shape[1] != d:
        raise ValueError(f"mu must have shape (K, {d}); got {p.mu.shape}")
    K = p.mu.shape[0]
    if p.weights.shape != (K,) or p.var.shape not in ((K,), (K, d)):
        raise ValueError(
            f"weights must be ({K},) and var ({K},) or ({K}, {d}); got {p.weights.shape} and "
            f"{p.var.shape}"
        )
    family = "spherical" if p.var.ndim == 1 else "diag"
    if covariance is not None and _check_covariance(covariance) != family:
        raise ValueError(f"covariance={covariance!r} but var has shape {p.var.shape} ({family})")
    if sparse_input:
        from jaxmix.inference.sparse_em import resolve_prior_sparse, sparse_responsibilities

        _, ll = sparse_responsibilities(X, p, standardize=False)
        if prior is None:
            return ll
        prior = resolve_prior_sparse(prior, X)
        dtype = float_dtype()
        jp = MixtureParams(*(jnp.asarray(v, dtype) for v in p))
        return ll + float(log_prior(jp, Prior(*(jnp.asarray(v, dtype) for v in prior))))
    if prior is not None:
        prior = resolve_prior(prior, values, observed)
    data = masked_data(values, observed)
    dtype = data.x.dtype
    jprior = None if prior is None else Prior(*(jnp.asarray(v, dtype) for v in prior))
    return float(_objective_jit(MixtureParams(*(jnp.asarray(v, dtype) for v in p)), data, jprior))


_objective_jit = jax.jit(objective)

_SPARSE_OPTIONS = (
    "n_init",
    "seed",
    "init",
    "tol",
    "max_iter",
    "min_var",
    "progress",
    "prior",
    "covariance",
    "chunk_size",
    "mesh",
)


def _fit_sparse(S: SparseRatings, K: Any, options: dict[str, Any]) -> EMResult:
    from jaxmix.inference.sparse_em import fit_sparse_em

    return fit_sparse_em(S, K, **{k: options[k] for k in _SPARSE_OPTIONS})


def _check_covariance(covariance: Any) -> str:
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}; got {covariance!r}")
    return covariance


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer; got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative; got {seed}")
    return int(seed)


def _to_result(
    final: EMState, std: Standardizer, min_var: float, covariance: str, prior: Prior | None
) -> EMResult:
    lls = np.asarray(final.log_likelihood, np.float64)
    objs = np.asarray(final.objective, np.float64)
    if not np.all(np.isfinite(objs)) or not np.all(np.isfinite(final.params.mu)):
        raise FloatingPointError(
            "EM produced a non-finite objective; the data may be too extreme for "
            f"{float_dtype()} (enable jax_enable_x64 for float64)"
        )
    best = int(np.argmax(objs))
    n_iter = int(final.n_iter[best])
    params = std.to_data(MixtureParams(*(np.asarray(p)[best] for p in final.params)))
    return EMResult(
        params=params,
        log_likelihood=float(lls[best]),
        objective=float(objs[best]),
        restart_log_likelihoods=lls,
        best_restart=best,
        n_iter=n_iter,
        converged=bool(final.converged[best]),
        history=np.asarray(final.history[best, :n_iter], np.float64),
        resp=np.asarray(final.resp[best], np.float64),
        restart_n_iter=np.asarray(final.n_iter),
        restart_converged=np.asarray(final.converged),
        covariance=covariance,
        min_var=min_var,
        prior=prior,
        restart_objectives=objs,
    )
