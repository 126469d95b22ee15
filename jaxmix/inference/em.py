"""Expectation-maximisation for the Gaussian mixture on a partially observed matrix: one driver
for every covariance family and every data layout.

The algorithm is a pair of pure functions over a typed state, :func:`init_state` and
:func:`step`; the loop runs inside XLA (``lax.while_loop``) and the restarts are batched with
``vmap`` into one compiled call (:func:`run_restarts`). Each restart stops on its own criterion,
and on large matrices (more than :data:`COMPACT_MIN_ENTRIES` entry slots) a restart that has
stopped stops costing: every iteration steps only the restarts still running, gathered into a
batch of a power-of-two size (:func:`loop_restarts`), so the work grows with the sum of the
restarts' iterations rather than with ``R`` times the longest. A stopped restart keeps its
state, so each restart's result is that of a single run.

It maximises the objective ``log p(X | params) + log p(params)`` of the model
:func:`jaxmix.models.mixture_model`: the log-likelihood alone without a prior (maximum
likelihood, the reference), the log posterior density with a :class:`~jaxmix.Prior` (MAP-EM).
One iteration (the reference's loop order):

1. E-step at the current parameters: responsibilities ``p(k | u)``, the objective and the
   expected sufficient statistics, in one pass over the data (the layout's ``e_step_stats``).
2. M-step from those statistics (the family's ``m_step``).
3. Stop when ``obj_new - obj_old <= tol * |obj_new|`` (objectives of successive E-steps).

The loop knows neither the family nor the layout: the family (:mod:`jaxmix.models.families`)
says what the log density, the statistics and the M-step are; the layout (:mod:`jaxmix.data`)
evaluates the sums over its observed entries (matrix products on a dense matrix, gathers and
segment sums on triples, split over devices with a mesh).

Without a prior the M-step is the maximum-likelihood one (the reference: a mean coordinate moves
only where its expected count is at least one). With a prior it is a conditional (ECM)
maximisation of the expected complete-data log posterior, each piece in closed form: the means
given the current variances, then the variances given the new means, then the weights:

.. math::

    \\mu_{kl} = \\frac{m_{0,l}/s_{0,l}^2 + \\sum_u p(k|u)[l \\in C_u] x_{ul} / \\mathrm{var}_{k(l)}}
        {1/s_{0,l}^2 + \\sum_u p(k|u)[l \\in C_u] / \\mathrm{var}_{k(l)}},\\qquad
    \\mathrm{var} = \\max\\Big(\\frac{S + 2b}{N + 2a + 2}, \\mathrm{min\\_var}\\Big), \\qquad
    w_k = \\frac{n_k + \\alpha - 1}{n + K(\\alpha - 1)}

with ``S`` the expected squared residual and ``N`` the expected number of observed entries of
the variance (per component, per component and column, or pooled, by family). Every piece
maximises its conditional exactly (the floor ``min_var`` makes the variance step the maximum over
``var >= min_var``, the objective being unimodal in each variance), so the objective never
decreases once the variances are feasible (``"kmeans++"`` floors its start at ``min_var``;
``"random_rows"`` does not). Every mean moves (the prior makes its update well defined without
data).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from jaxmix import _progress, _tracing
from jaxmix._precision import highest
from jaxmix._validate import (
    check_choice,
    check_n_components,
    check_nonneg_float,
    check_nonneg_int,
    check_positive_int,
    check_seed,
)
from jaxmix.data import METHODS, EStep, Standardizer, as_data, default_min_var, float_dtype
from jaxmix.data.triples import DENSE_ROW_DENSITY, check_mesh
from jaxmix.inference.init import init_params
from jaxmix.inference.split_merge import PATIENCE, candidate_starts
from jaxmix.models.families import Family, as_params, family_of, get_family
from jaxmix.models.mixture import (
    as_device,
    objective,
    to_data,
    to_internal,
    warn_column_scales,
    warn_fit,
)
from jaxmix.models.prior import (
    Prior,
    log_prior,
    log_prior_shift,
    resolve_prior,
    standardize_prior,
)
from jaxmix.params import MixtureParams
from jaxmix.results import EMResult

__all__ = [
    "COMPACT_MIN_ENTRIES",
    "EMConstants",
    "EMState",
    "advance",
    "batch_sizes",
    "e_step",
    "executed_iterations",
    "fit_em",
    "init_state",
    "is_running",
    "log_objective",
    "loop",
    "loop_restarts",
    "m_step",
    "run_restarts",
    "step",
    "suff_stats",
]


#: Restarts are compacted (:func:`loop_restarts`) only on a block of more than this many entry
#: slots. Each batch size is a compiled copy of the iteration: on a small matrix compiling them
#: costs more than the iterations they save (5 restarts on 300 x 12: about 2x the compile time;
#: 10 restarts: 4-5x), on the course's 1200 x 1200 matrix an iteration is worth it.
COMPACT_MIN_ENTRIES = 1 << 20


class EMState(NamedTuple):
    """State of one EM run.

    Attributes:
        params: Current parameters (after the latest M-step).
        resp: Responsibilities from the latest E-step, ``(slots, K)`` (the layout's row slots).
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


class EMConstants(NamedTuple):
    """The numbers an iteration needs besides the state and the data (traced, so a new value
    does not recompile).

    Attributes:
        tol: Relative tolerance of the stopping rule.
        min_var: Variance floor (in the units of the data).
        ll_shift: Added to the log-likelihood (standardised -> data units).
        prior: A resolved :class:`~jaxmix.Prior` of arrays in the units of the data, or ``None``.
        prior_shift: Added to the log-prior (standardised -> data units).
    """

    tol: Array
    min_var: Array
    ll_shift: Array
    prior: Prior | None
    prior_shift: Array


def suff_stats(resp: Array, data: Any, family: Any, params: Any = None) -> Any:
    """The family's sufficient statistics of given responsibilities ``(n, K)`` on dense device
    arrays (:meth:`jaxmix.data.DenseArrays.suff_stats`). A family whose statistics depend on
    the rows' latent posteriors (``"factor"``) needs the ``params`` they are taken under."""
    family = get_family(family)
    aux = None if params is None else data.log_joint(params, family)[1]
    return data.suff_stats(resp, family, aux)


def e_step(params: MixtureParams, data: Any) -> EStep:
    """Responsibilities, log-likelihood and sufficient statistics of ``params`` on a layout's
    device arrays (``data``: :meth:`jaxmix.data.DenseLayout.device`, or one block of
    :class:`~jaxmix.data.ChunkedTriples`)."""
    return data.e_step_stats(params, family_of(params))


def m_step(stats: Any, params: MixtureParams, min_var: Any, prior: Prior | None = None) -> Any:
    """The family's maximum-likelihood (``prior=None``) or MAP update from ``stats``."""
    return family_of(params).m_step(stats, params, min_var, prior)


def init_state(params: MixtureParams, n_slots: int, dtype: Any, max_iter: int) -> EMState:
    """The state before the first iteration, for ``n_slots`` rows of responsibilities."""
    K = params.weights.shape[-1]
    return EMState(
        params=as_device(params, dtype),
        resp=jnp.zeros((n_slots, K), dtype),
        log_likelihood=jnp.asarray(-jnp.inf, dtype),
        n_iter=jnp.asarray(0, jnp.int32),
        history=jnp.zeros((max_iter,), dtype),
        converged=jnp.asarray(False),
        objective=jnp.asarray(-jnp.inf, dtype),
    )


def advance(state: EMState, out: EStep, family: Family, consts: EMConstants) -> EMState:
    """The rest of an iteration once the E-step is done: objective, M-step, stopping rule.

    Args:
        state: State before the iteration (its ``params`` are those of the E-step).
        out: The E-step at ``state.params``, with statistics.
        family: The covariance family.
        consts: Tolerance, floor, unit shifts and prior.

    Returns:
        The next state.
    """
    ll = out.log_likelihood + consts.ll_shift
    obj = ll
    if consts.prior is not None:
        obj = ll + log_prior(state.params, consts.prior) + consts.prior_shift
    params = family.m_step(out.stats, state.params, consts.min_var, consts.prior)
    converged = (state.n_iter > 0) & (obj - state.objective <= consts.tol * jnp.abs(obj))
    return EMState(
        params=params,
        resp=out.resp,
        log_likelihood=ll,
        n_iter=state.n_iter + 1,
        history=state.history.at[state.n_iter].set(obj),
        converged=converged,
        objective=obj,
    )


def step(
    state: EMState,
    data: Any,
    family: Family,
    consts: EMConstants,
    axis_name: str | None = None,
) -> EMState:
    """One E-step and M-step, then the stopping rule (on one block of a layout's arrays)."""
    out = data.e_step_stats(state.params, family, axis_name=axis_name)
    return advance(state, out, family, consts)


def is_running(state: EMState, max_iter: int) -> Array:
    """Whether a run goes on after ``state``: the first iteration always runs; after it, until
    the stopping rule fires, ``max_iter`` iterations are done or the objective is not finite.
    Elementwise, so it reads a batch of states (leading restart axis) as well as one."""
    go_on = ~state.converged & (state.n_iter < max_iter) & jnp.isfinite(state.objective)
    return (state.n_iter == 0) | go_on


def loop(one: Any, state: EMState, max_iter: int, progress: bool = False, key: Any = 0) -> EMState:
    """Run ``one`` (a state -> state iteration) from ``state`` inside ``lax.while_loop`` until the
    stopping rule fires, ``max_iter`` iterations are done or the objective is not finite (the
    first iteration always runs). With ``progress``, every iteration reports its count and
    objective to :mod:`jaxmix._progress` under ``key`` (the restart).

    This is one run; :func:`loop_restarts` runs a batch of them, each as if alone."""

    def cond(state):
        return is_running(state, max_iter)

    def body(state):
        new = one(state)
        if progress:
            # under vmap the restarts run the body in lockstep; a finished one keeps its last
            # state, so it reports that (its final objective), not the step that is thrown away
            go_on = cond(state)
            _progress.report(
                jnp.where(go_on, new.n_iter, state.n_iter),
                jnp.where(go_on, new.objective, state.objective),
                key=key,
            )
        return new

    return lax.while_loop(cond, body, one(state))


def batch_sizes(n_restarts: int, n_entries: int | None = None) -> tuple[int, ...]:
    """The batch sizes :func:`loop_restarts` compiles for ``n_restarts`` restarts: the powers of
    two below ``n_restarts``, and ``n_restarts`` itself (``(1, 2, 4, 5)`` for 5), so that at
    most ``1 + ceil(log2 R)`` copies of the iteration are compiled and a batch is never more
    than twice the number of restarts still running. On a block of ``n_entries`` entry slots
    (given) of at most :data:`COMPACT_MIN_ENTRIES`, only ``n_restarts`` (no compaction)."""
    n_restarts = int(n_restarts)
    if n_entries is not None and n_entries <= COMPACT_MIN_ENTRIES:
        return (n_restarts,)
    sizes = {n_restarts}
    size = 1
    while size < n_restarts:
        sizes.add(size)
        size *= 2
    return tuple(sorted(sizes))


def executed_iterations(n_iter: Any) -> int:
    """Restart-iterations :func:`loop_restarts` computes for restarts that ran ``n_iter``
    iterations each: at every iteration, the smallest of :func:`batch_sizes` that holds the
    restarts still running (``sum(n_iter)`` at best, ``R * max(n_iter)`` without compaction)."""
    n_iter = np.asarray(n_iter, np.int64).ravel()
    sizes = np.asarray(batch_sizes(n_iter.size))
    active = (n_iter[None, :] > np.arange(int(n_iter.max()))[:, None]).sum(axis=1)
    return int(sizes[np.searchsorted(sizes, active)].sum())


def loop_restarts(
    one: Any,
    state: EMState,
    max_iter: int,
    progress: bool = False,
    sizes: tuple[int, ...] | None = None,
) -> EMState:
    """Run a batch of restarts (``state`` with a leading restart axis ``R``), each as
    :func:`loop` would run it alone, at a cost that grows with the restarts' own iterations.

    One ``lax.while_loop`` over iterations. Every iteration gathers the restarts still running
    (:func:`is_running`) into the smallest batch of :func:`batch_sizes` that holds them, topped up
    with finished restarts, runs ``one`` vmapped over that batch (a finished restart keeps its
    state, exactly as in :func:`loop`), and scatters the batch back: a ``lax.switch`` over the
    batch sizes picks the compiled copy, so the work is about ``sum(n_iter)`` restart-iterations
    instead of ``R * max(n_iter)`` (:func:`executed_iterations`), with no host round trip and
    one compiled program. With ``progress`` every restart of the batch reports as in
    :func:`loop` (``key`` = its index), from its second iteration on.

    Args:
        one: One iteration of one restart (a state -> state function, vmapped here).
        state: The restarts' states before their first iteration (leading axis ``R``).
        max_iter: Iteration cap per restart.
        progress: Report the iterations to :mod:`jaxmix._progress`.
        sizes: The batch sizes (default :func:`batch_sizes` of ``R``); ``(R,)`` runs every
            restart at every iteration, a finished one frozen.

    Returns:
        The restarts' final states (leading axis ``R``, in their order).
    """
    R = state.n_iter.shape[0]
    sizes = batch_sizes(R) if sizes is None else tuple(sizes)
    _tracing.note(f"em-batches[{len(sizes)}]")

    def lane(s, key):
        go_on = is_running(s, max_iter)
        new = jax.tree.map(lambda a, b: jnp.where(go_on, a, b), one(s), s)
        if progress:
            # the first iteration is not reported (as in loop, where it runs before the
            # while_loop); advance ignores a count of 0 and a non-finite value
            shown = s.n_iter > 0
            _progress.report(
                jnp.where(shown, new.n_iter, 0),
                jnp.where(shown, new.objective, jnp.nan),
                key=key,
            )
        return new

    def iterate(size):
        def batch(state):
            if size == R:
                return jax.vmap(lane)(state, jnp.arange(R))
            # the running restarts first (in their order), then finished ones as padding
            idx = jnp.argsort(~is_running(state, max_iter), stable=True)[:size]
            sub = jax.vmap(lane)(jax.tree.map(lambda a: a[idx], state), idx)
            return jax.tree.map(lambda a, b: a.at[idx].set(b, unique_indices=True), state, sub)

        return batch

    def body(state):
        if len(sizes) == 1:
            return iterate(R)(state)
        n_running = jnp.sum(is_running(state, max_iter))
        branch = jnp.searchsorted(jnp.asarray(sizes), n_running)
        return lax.switch(branch, [iterate(size) for size in sizes], state)

    return lax.while_loop(lambda s: jnp.any(is_running(s, max_iter)), body, state)


@functools.partial(jax.jit, static_argnames=("family", "max_iter", "progress", "sizes"))
@highest
def run_restarts(
    start: MixtureParams,
    data: Any,
    consts: EMConstants,
    *,
    family: Family,
    max_iter: int,
    progress: bool = False,
    sizes: tuple[int, ...] | None = None,
) -> EMState:
    """Every restart to convergence, in one compiled program: the core of :func:`fit_em`.

    The restarts run in :func:`loop_restarts` (each iteration steps only those still running),
    on the layout's arrays prepared once for the loop (``for_loop``: on the CPU the dense rows'
    transposes, so the M-step's column sums are plain matrix products). The program holds one
    copy of the iteration per batch size of :func:`batch_sizes` (``1 + ceil(log2 R)``; one on a
    block of at most :data:`COMPACT_MIN_ENTRIES` entry slots); a second call with same-shaped
    data reuses it.

    Args:
        start: Starting parameters with a leading restart axis ``R``, in the units of ``data``.
        data: A layout's device arrays (:meth:`jaxmix.data.DenseLayout.device` or
            :meth:`jaxmix.data.TriplesLayout.device`; split over devices when built with a mesh).
        consts: Tolerance, floor, unit shifts and prior (:class:`EMConstants`); a negative
            ``tol`` never stops (every restart runs ``max_iter`` iterations).
        family: The covariance family (static).
        max_iter: Iteration cap (static).
        progress: Report the iterations to :mod:`jaxmix._progress` (static).
        sizes: The batch sizes of :func:`loop_restarts` (static; default :func:`batch_sizes` of
            ``R`` and the block's entry slots).

    Returns:
        The final :class:`EMState` of every restart (leading axis ``R``; ``resp`` per row slot of
        the layout).
    """
    _tracing.note("em")
    _tracing.note(f"em[{type(data).__name__}]")

    def run_all(block, start, consts, axis_name):
        block = block.for_loop()
        state = jax.vmap(lambda p: init_state(p, block.n_slots, block.dtype, max_iter))(start)
        if axis_name is not None:
            state = state._replace(resp=lax.pcast(state.resp, axis_name, to="varying"))
        return loop_restarts(
            lambda s: step(s, block, family, consts, axis_name),
            state,
            max_iter,
            progress,
            batch_sizes(start.weights.shape[0], block.n_entries) if sizes is None else sizes,
        )

    rep = jax.sharding.PartitionSpec()
    out_specs = EMState(
        params=rep,
        resp=data.row_spec(batch_dims=1),
        log_likelihood=rep,
        n_iter=rep,
        history=rep,
        converged=rep,
        objective=rep,
    )
    return data.distribute(run_all, (start, consts), out_specs)


def _check_layout_options(chunk_size: Any, dense_row_density: Any) -> tuple[Any, Any]:
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    if dense_row_density is not None:
        dense_row_density = check_nonneg_float(dense_row_density, "dense_row_density")
        if dense_row_density > 1.0:
            raise ValueError(f"dense_row_density must lie in [0, 1]; got {dense_row_density}")
    return chunk_size, dense_row_density


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
    min_var: float | None = None,
    progress: bool = False,
    prior: Prior | None = None,
    covariance: Any = "spherical",
    method: str = "auto",
    chunk_size: int | None = None,
    mesh: Any = None,
    dense_row_density: float | None = DENSE_ROW_DENSITY,
    rank: int | None = None,
    row_offset: bool | None = None,
    split_merge: int = 0,
) -> EMResult:
    """Fit a Gaussian mixture to a partially observed matrix by (MAP-)EM.

    Only the observed entries enter the likelihood (see :mod:`jaxmix.models.mixture`). Without a
    prior this is maximum-likelihood EM (the reference algorithm); with a :class:`~jaxmix.Prior` it
    maximises ``log-likelihood + log-prior`` of :func:`jaxmix.models.mixture_model` (MAP-EM, closed
    form conditional M-steps). All restarts run in one compiled call, each to its own stopping rule
    (a restart that has stopped is no longer computed); the one with the highest final objective
    wins. Computation happens in JAX's default float dtype (float64 only if the user
    enabled ``jax_enable_x64``) on a standardised copy of the data; results come back in data units
    as float64 NumPy arrays.

    Standardisation and the prior: the prior is resolved in data units (recorded in
    ``EMResult.prior``) and mapped exactly to the standardised units (Normal and InverseGamma are
    closed under the affine map); the Jacobian of the map is added back, so ``objective`` and
    ``history`` are in data units: ``objective == log_objective(X, params_before_last_M_step,
    prior=result.prior)``.

    Reuse: the compiled programs are specific to array shapes, so the data's arrays are padded
    to size classes (:func:`jaxmix.data.size_class`) with rows (and, on triples, entries and
    chunks) that carry no weight: fits of matrices of nearby sizes (a cross-validation or
    bootstrap loop) reuse the compiled programs, once per size class and ``K``; the padding
    never appears in the result. A :class:`~jaxmix.SparseRatings` is immutable, and what its
    layout derives from it (summary, chunked triples on the device, the k-means++ seeding's copy
    and result) is built on the first call and kept with it (:data:`jaxmix.data.layout_cache`),
    so a second call on the same matrix (and :func:`~jaxmix.complete`,
    :func:`~jaxmix.responsibilities`, :func:`~jaxmix.predictive_summary`) skips that work.
    Across processes, :func:`jaxmix.enable_compilation_cache` keeps the compiled programs on
    disk.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry. Rows with no observed entry are
            allowed (their responsibilities are the weights). Or a :class:`~jaxmix.SparseRatings`.
        K: Number of components, ``1 <= K <= n``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed; overrides the ``NaN`` convention.
        n_init: Number of restarts; restart ``r`` uses seed ``seed + r``.
        seed: Base seed.
        init: ``"kmeans++"`` (default), ``"random_rows"`` (the reference initialisation,
            reproducing the course's numbers), explicit :class:`~jaxmix.MixtureParams` (optionally
            batched over restarts ``(R, K, ...)``) or a previous result. The named methods give one
            variance per component, which the family adapts (repeated over the columns for
            ``"diag"``, the weighted mean for ``"shared"``); an explicit spherical ``var`` ``(K,)``
            is adapted the same way.
        tol: Relative tolerance: stop when ``obj_new - obj_old <= tol * |obj_new|``.
        max_iter: Iteration cap per restart.
        min_var: Floor on every variance (data units). ``None`` (default): scale-aware,
            :func:`jaxmix.data.default_min_var` (the course's ``0.25`` on data spread like
            ratings, 0.25 in standardised units on data of smaller spread; a
            :class:`~jaxmix.VarianceFloorWarning` when most variances sit on a floor as wide
            as the data). It applies with a prior too: MAP-EM then
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
        covariance: The covariance family (:data:`jaxmix.models.families.FAMILIES`, or a family
            object): ``"spherical"`` (``var`` of shape ``(K,)``), ``"diag"`` (``(K, d)``),
            ``"shared"`` (one variance ``()``) or ``"factor"`` (a mixture of factor analysers:
            ``rank`` factors per component and a per-row offset).
        method: The data layout (:func:`jaxmix.data.as_data`): ``"dense"`` (matrix products over
            all ``n d`` entries), ``"sparse"`` (sums over the observed entries only: ``O(nnz K)``
            time and ``O(nnz + (n + d) K)`` memory per iteration) or ``"auto"`` (default): sparse
            for a :class:`~jaxmix.SparseRatings` or with a ``mesh``; for a dense array, sparse when
            it has at least :data:`jaxmix.data.AUTO_MIN_ENTRIES` entries and a share of observed
            entries below :data:`jaxmix.data.SPARSE_CROSSOVER_DENSITY` (measured by
            ``benchmarks/dense_vs_sparse.py``). Both give the same result up to rounding.
            ``"dense"`` with a ``SparseRatings`` materialises the ``n x d`` matrix.
        chunk_size: Sparse layout only: observed entries processed at once (bounds the
            ``chunk_size x K`` intermediates; default 32768).
        mesh: Sparse layout only: a one-axis ``jax.sharding.Mesh`` (or a list of devices) to split
            the rows over; the sufficient statistics are summed across devices with ``psum``.
            Works across hosts after ``jax.distributed.initialize()`` with a mesh of
            ``jax.devices()``.
        dense_row_density: Sparse layout only: rows with at least this share of observed entries
            are stored densely and go through matrix products, in ``[0, 1]`` (``0``: every row
            with an entry, ``n x d`` memory); ``None``: every row goes through the triples.
        rank: ``covariance="factor"`` only: the number of factors ``q`` of each component.
        row_offset: ``covariance="factor"`` only: model a per-row offset (a factor with a fixed
            all-ones loading: a user's personal level; default ``True``).
        split_merge: Rounds of split-and-merge moves after the restarts
            (:mod:`jaxmix.inference.split_merge`; ``0``, the default: none; needs ``K >= 3``).
            A round runs EM from every candidate (about ``8 (K - 2)`` of them, batched like
            restarts) and keeps the best when it raises the objective by more than
            ``tol * |objective|``; the rounds stop after
            :data:`~jaxmix.inference.split_merge.PATIENCE` (2) in a row without gain. The result's
            ``history`` and ``n_iter`` then cover the winning restart and every kept round,
            ``split_merge_objectives`` the objective after each.

    Returns:
        An :class:`~jaxmix.EMResult`.

    Raises:
        TypeError, ValueError: On malformed input (see :func:`jaxmix.validate_matrix`), or a
            ``min_var`` not representable in the standardised units of JAX's float dtype; a
            ``mesh`` the family's EM would hang on (:func:`~jaxmix.data.triples.check_mesh`:
            the factor family over as many CPU devices of one process as it has CPU threads).

    Warns:
        ColumnScaleWarning: Column scales span three orders of magnitude under a family with
            one variance for every column (``"spherical"``, ``"shared"``).
        EmptyComponentWarning: A component of the winner has weight about 0.
        VarianceFloorWarning: Most variances sit on a floor at least half the data's pooled
            variance.

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
    check_choice(method, "method", METHODS)
    if mesh is not None:
        if method == "dense":
            raise ValueError("mesh needs the sparse path (method='sparse' or 'auto')")
        method = "sparse"
    layout = as_data(X, mask, method)
    n, d = layout.shape
    K = check_n_components(K, n)
    n_init = check_positive_int(n_init, "n_init")
    split_merge = check_nonneg_int(split_merge, "split_merge")
    if split_merge and K < 3:
        raise ValueError(f"split_merge needs K >= 3 components; got K = {K}")
    max_iter = check_positive_int(max_iter, "max_iter")
    seed = check_seed(seed)
    tol = check_nonneg_float(tol, "tol")
    default_floor = min_var is None
    if not default_floor:
        min_var = check_nonneg_float(min_var, "min_var")
    family = get_family(covariance, rank=rank, row_offset=row_offset)
    chunk_size, dense_row_density = _check_layout_options(chunk_size, dense_row_density)
    mesh = check_mesh(mesh, family)
    summary = layout.summary()
    if default_floor:
        min_var = default_min_var(summary)
    warn_column_scales(summary, family)
    if prior is not None:
        prior = resolve_prior(prior, summary)
        if prior.alpha < 1.0:
            raise ValueError(
                f"MAP-EM needs Prior.alpha >= 1 (for alpha < 1 the posterior density is unbounded "
                f"at an emptied component); got alpha = {float(prior.alpha)}"
            )

    start = init_params(
        init, layout, K, n_init=n_init, seed=seed, min_var=min_var, covariance=family
    )
    std = Standardizer.fit(summary)
    dtype = float_dtype()
    data = layout.device(
        std, dtype, chunk_size=chunk_size, mesh=mesh, dense_row_density=dense_row_density, pad=True
    )
    prior_internal, prior_shift = None, 0.0
    if prior is not None:
        prior_internal = as_device(standardize_prior(prior, std.offset, std.scale), dtype)
        prior_shift = log_prior_shift(family, K, d, std.scale)
    consts = EMConstants(
        tol=jnp.asarray(tol, dtype),
        min_var=jnp.asarray(std.internal_min_var(min_var, dtype), dtype),
        ll_shift=jnp.asarray(std.log_likelihood_shift(layout.nnz), dtype),
        prior=prior_internal,
        prior_shift=jnp.asarray(prior_shift, dtype),
    )

    def run(starts: MixtureParams, label: str, drop_failed: bool = False) -> tuple:
        """Every start to convergence (one batch); the result and the winner's internal
        parameters. With ``drop_failed``, runs whose objective or means are not finite are left
        out (``(None, None)`` when none is left); without, they raise (``_to_result``)."""
        R = starts.mu.shape[0]
        with _progress.progress_bar(progress, f"EM K={K} {label}x{R}"):
            final = run_restarts(
                as_device(to_internal(starts, std), dtype),
                data,
                consts,
                family=family,
                max_iter=max_iter,
                progress=progress,
                sizes=batch_sizes(R, data.n_entries),
            )
            objective = np.asarray(final.objective, np.float64)
            ok = np.ones(R, bool)
            if drop_failed:
                finite_mu = np.isfinite(np.asarray(final.params.mu)).reshape(R, -1).all(axis=1)
                ok = np.isfinite(objective) & finite_mu
                if not ok.any():
                    return None, None
            won = int(np.flatnonzero(ok)[np.argmax(objective[ok])])
            # only the winner's responsibilities come to the host
            resp = layout.rows_from_slots(final.resp[won])
            final = jax.tree.map(lambda a: a[ok], jax.device_get(final._replace(resp=None)))
        out = _to_result(final, resp, std, min_var, family, prior)
        return out, jax.tree.map(lambda a: a[out.best_restart], final.params)

    result, best = run(start, "")
    if split_merge:
        result, best = _split_merge_rounds(result, best, run, split_merge, std.scale, tol, seed)
    stats = jax.device_get(_final_stats(as_device(best, dtype), data))
    est = family.estimation_cov(stats, best, prior_internal)
    scale2 = std.scale**2
    warn_fit(result.params, summary, min_var)
    return result._replace(estimation_cov=jax.tree.map(lambda a: a * scale2, est))


@jax.jit
@highest
def _final_stats(params: MixtureParams, data: Any) -> Any:
    """The winner's sufficient statistics from one more E-step (summed over devices)."""
    family = family_of(params)

    def stats(block, params, axis_name):
        return block.e_step_stats(params, family, axis_name=axis_name).stats

    return data.distribute(stats, (params,), jax.sharding.PartitionSpec())


def _split_merge_rounds(
    result: EMResult,
    best: MixtureParams,
    run: Any,
    rounds: int,
    scale: float,
    tol: float,
    seed: int,
) -> tuple[EMResult, MixtureParams]:
    """Up to ``rounds`` rounds of split-and-merge candidates from ``result``, each run by ``run``
    (a batch of starts -> result, winner's internal parameters; candidates whose run failed, a
    non-finite objective, are left out); a round's best is kept when it raises the objective by
    more than ``tol`` relative; they stop after ``PATIENCE`` rounds in a row without gain
    (:mod:`jaxmix.inference.split_merge`)."""
    rng = np.random.default_rng(seed)
    kept = []
    idle = 0
    last = None  # the last round's starts, when it gained nothing (the same result since)
    for _ in range(rounds):
        starts = candidate_starts(result.params, result.resp, scale, rng)
        if last is not None and np.array_equal(starts.mu, last.mu):
            break  # no split drew a random direction: the same runs again
        cand, cand_best = run(starts, "split-merge ", drop_failed=True)
        if cand is None or cand.objective - result.objective <= tol * abs(cand.objective):
            idle += 1
            if idle >= PATIENCE:
                break
            last = starts
            continue
        idle, last = 0, None
        kept.append(cand.objective)
        best = cand_best
        result = result._replace(
            params=cand.params,
            log_likelihood=cand.log_likelihood,
            objective=cand.objective,
            n_iter=result.n_iter + cand.n_iter,
            converged=cand.converged,
            history=np.concatenate([result.history, cand.history]),
            resp=cand.resp,
        )
    return result._replace(split_merge_objectives=np.asarray(kept, np.float64)), best


def _to_result(
    final: EMState,
    resp: np.ndarray,
    std: Standardizer,
    min_var: float,
    family: Family,
    prior: Prior | None,
) -> EMResult:
    """The result of a batch of runs (``final``, on the host; ``resp`` the winner's ``(n, K)``)."""
    lls = np.asarray(final.log_likelihood, np.float64)
    objs = np.asarray(final.objective, np.float64)
    if not np.all(np.isfinite(objs)) or not np.all(np.isfinite(final.params.mu)):
        raise FloatingPointError(
            "EM produced a non-finite objective; the data may be too extreme for "
            f"{float_dtype()} (enable jax_enable_x64 for float64)"
        )
    best = int(np.argmax(objs))
    n_iter = int(final.n_iter[best])
    restarts = to_data(final.params, std)
    return EMResult(
        params=jax.tree.map(lambda a: a[best], restarts),
        log_likelihood=float(lls[best]),
        objective=float(objs[best]),
        restart_log_likelihoods=lls,
        best_restart=best,
        n_iter=n_iter,
        converged=bool(final.converged[best]),
        history=np.asarray(final.history[best, :n_iter], np.float64),
        resp=np.asarray(resp, np.float64),
        restart_n_iter=np.asarray(final.n_iter),
        restart_converged=np.asarray(final.converged),
        covariance=family.name,
        min_var=min_var,
        prior=prior,
        restart_objectives=objs,
        restart_params=restarts,
    )


@jax.jit
@highest
def _objective_jit(params, data, prior):
    return objective(params, data, prior)


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
            \\mathcal N(x_{u,C_u}; \\mu_{k,C_u}, \\Sigma_{k,C_u}) + \\log p(w, \\mu, \\Sigma)

    It is the log density of :func:`jaxmix.models.mixture_model` with the component of every row
    summed out, evaluated directly in data units (no standardisation) in JAX's default float dtype.
    Without a prior it is the observed-data log-likelihood.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries (rows with no observed entry
            contribute ``log sum_k (w_k + 1e-16)``, about 0), or a :class:`~jaxmix.SparseRatings`.
        params: :class:`~jaxmix.MixtureParams` or a fitted result.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        prior: ``None`` or a :class:`~jaxmix.Prior`; ``None`` fields are resolved from ``X`` (pass
            ``EMResult.prior`` to reuse the numbers of a fit).
        covariance: Optional check of the family; by default it is that of ``params``.

    Returns:
        The objective as a float.

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> res = jaxmix.fit_em(X, 2, prior=jaxmix.Prior(), min_var=0.01)
        >>> obj = jaxmix.log_objective(X, res.params, prior=res.prior)
        >>> bool(obj >= res.objective - 1e-6 * abs(res.objective))  # never lower, up to float32
        True
    """
    layout = as_data(X, mask)
    n, d = layout.shape
    try:
        fitted = as_params(params, what="params")
    except TypeError:
        raise TypeError(
            f"params must be MixtureParams or a fitted result; got {type(params).__name__}"
        ) from None
    fitted = jax.tree.map(lambda a: np.asarray(a, np.float64), fitted)
    family = family_of(fitted)
    if fitted.mu.ndim != 2 or fitted.mu.shape[1] != d:
        raise ValueError(f"mu must have shape (K, {d}); got {fitted.mu.shape}")
    K = fitted.mu.shape[0]
    want_var = family.var_shape(K, d)
    if fitted.weights.shape != (K,) or np.shape(fitted.var) != want_var:
        raise ValueError(
            f"weights must be ({K},) and var {want_var} ({family.name}); got "
            f"{fitted.weights.shape} and {np.shape(fitted.var)}"
        )
    if covariance is not None and get_family(covariance).name != family.name:
        raise ValueError(
            f"covariance={covariance!r} but var has shape {np.shape(fitted.var)} ({family.name})"
        )
    if prior is not None:
        prior = resolve_prior(prior, layout.summary())
    dtype = float_dtype()
    data = layout.device(Standardizer.identity(d), dtype).local()
    jprior = None if prior is None else as_device(prior, dtype)
    return float(_objective_jit(as_device(fitted, dtype), data, jprior))
