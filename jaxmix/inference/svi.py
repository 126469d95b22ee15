"""Stochastic variational inference for the mixture with NumPyro: SVI-MAP and mean-field SVI.

:func:`fit_svi` fits :func:`jaxmix.mixture_model` (the component of every row summed out by
``TraceEnum_ELBO(max_plate_nesting=1)``) with one of two automatic guides over the parameter
sites ``weights``, ``var`` and ``mu``:

* ``guide="map"``: ``AutoDelta``, a point mass. The ELBO of a point mass is the log joint density,
  so SVI maximises exactly the objective EM maximises,

  .. math::

      \\log p(X \\mid w, \\mu, \\mathrm{var}) + \\log p(w, \\mu, \\mathrm{var}),

  the MAP problem (with ``prior=None`` the flat priors contribute nothing: maximum likelihood).
  ``TraceEnum_ELBO`` with a point-mass guide has no Monte Carlo noise, so the problem is
  deterministic.
* ``guide="meanfield"``: ``AutoNormal``, an independent Normal for every *unconstrained*
  coordinate (``mu``; ``log var``; the stick-breaking coordinates of ``weights``), pushed through
  NumPyro's ``biject_to`` of the site's support: a variational approximation of the posterior.

The optimiser runs inside one compiled XLA program (``lax.scan`` over ``svi.update``, then a
``lax.while_loop``):

1. ``num_steps`` steps of Adam (``numpyro.optim.Adam``) in the unconstrained space, with the step
   size ``learning_rate`` for the first half and an exponential decay to ``learning_rate / 100``
   over the second half (the decay lets Adam settle; for ``"meanfield"`` it also shrinks the
   Monte Carlo noise of the final iterates).
2. ``"map"`` only: up to ``polish_steps`` iterations of L-BFGS on the same ``TraceEnum_ELBO``
   loss of the ``AutoDelta`` guide, in the same unconstrained coordinates: ``optax.lbfgs``
   (memory 10) with optax's zoom line search (strong Wolfe conditions, at most 30 loss evaluations
   per iteration), stopped when an iteration past the first lowers the loss by at most ``1e-12``
   relative (``8 eps`` in float32). The point-mass loss being deterministic, a quasi-Newton method
   with a line search is legitimate. Two guards on top of optax: the line search's approximate
   (Hager-Zhang) decrease test may accept a higher loss only within that same tolerance (optax's
   default, ``1e-6`` relative, is far looser than the stopping rule); and an iteration that ends at
   a higher or non-finite loss is rejected (the point before it is kept) and ends the polish,
   converged if the increase is within the tolerance (rounding at the optimum), not converged
   otherwise. On small, well-conditioned problems (the tests' data) Adam with the decaying step
   size is already at the optimum to about 1e-12 and the polish stops after two iterations (some
   20 evaluations: with a gradient at rounding level the first line search cannot satisfy the
   curvature test and extrapolates); on ill-conditioned ones (near-degenerate components, as on
   the Netflix data with K=12) Adam stalls at its step size's noise floor and the polish is what
   keeps improving the fit.

Units. Like EM, the fit runs on a standardised copy of the data (column means removed, one
power-of-two scale: :class:`jaxmix.data.Standardizer`), so that the step size means the same for
any data scale, with the prior mapped exactly to those units. The Normal and InverseGamma
families, and the mean-field family (``mu`` is affine in its standardised value, ``log var`` a
shift of it), are closed under the map, so the MAP estimate and the optimal variational
distribution are the same as in data units. Everything returned is in data units: ``params``,
the variational locations and scales, ``objective`` (recomputed with
:func:`jaxmix.log_objective`) and ``history`` (minus the standardised loss, plus the Jacobian
constants, so that it rises: the objective exactly for ``"map"``; the ELBO for ``"meanfield"``,
whose prior and entropy Jacobians cancel).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
from jax import Array, lax
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import SVI, TraceEnum_ELBO
from numpyro.infer.autoguide import AutoDelta, AutoNormal
from numpyro.infer.initialization import init_to_value

from jaxmix import _progress, _tracing
from jaxmix._precision import highest
from jaxmix._validate import (
    check_choice,
    check_n_components,
    check_nonneg_int,
    check_positive_float,
    check_positive_int,
    check_seed,
)
from jaxmix.data import Standardizer, as_data, float_dtype
from jaxmix.inference.em import log_objective
from jaxmix.inference.init import init_params
from jaxmix.models.families import Family, get_family
from jaxmix.models.mixture import as_device, to_data, to_internal
from jaxmix.models.numpyro_model import mixture_model
from jaxmix.models.prior import Prior, log_prior_shift, resolve_prior, standardize_prior
from jaxmix.models.variational import constrain, site_names
from jaxmix.params import MixtureParams
from jaxmix.results import SVIResult

__all__ = ["GUIDES", "compiled_program", "fit_svi"]

GUIDES = ("map", "meanfield")
_FINAL_LR_RATIO = 0.01  # the step size decays to learning_rate * this over the second half
_LBFGS_MEMORY = 10  # curvature pairs kept by optax.lbfgs
_MAX_LINESEARCH = 30  # loss evaluations allowed to one zoom line search
_MIN_WEIGHT = 1e-12  # a starting weight below this is raised to it (stick-breaking needs w > 0)


class _Static(NamedTuple):
    """The options that fix the compiled program (hashable, passed as a static argument)."""

    K: int
    covariance: Any  # the family object (hashable)
    guide: str
    num_steps: int
    polish_steps: int
    record_every: int
    num_particles: int
    init_scale: float
    progress: bool


class _PolishState(NamedTuple):
    x: Array  # (p,) current point (the last accepted one)
    f: Array  # loss at x
    g: Array  # (p,) gradient at x
    opt: Any  # optax.lbfgs state (curvature pairs; the line search's last value and gradient)
    it: Array  # iterations run (the last one may be a rejected step)
    n_evals: Array  # loss-and-gradient evaluations (the start, then every line-search trial)
    losses: Array  # (max_iter,) loss after every iteration
    evals: Array  # (max_iter,) evaluations done by the end of every iteration
    done: Array
    converged: Array


def _polish(fun: Any, x0: Array, max_iter: int, ftol: Array) -> _PolishState:
    """Minimise ``fun`` from ``x0`` by ``optax.lbfgs`` (zoom line search), inside one XLA loop.

    The loss and its gradient are evaluated once at ``x0``; every iteration then runs one
    ``optax.lbfgs`` update, whose zoom line search evaluates the loss and gradient at each trial
    step and leaves the chosen point's value and gradient in its state (reused by the next
    iteration, as :func:`optax.value_and_grad_from_state` would; ``info.num_linesearch_steps``
    counts the evaluations). The line search's approximate-Wolfe test accepts an increase of the
    loss of at most ``ftol`` relative (``approx_dec_rtol=ftol``; optax's default 1e-6 would be far
    looser than the stopping rule).

    Stops after ``max_iter`` iterations; when an iteration past the first lowers the loss by at
    most ``ftol * |loss|`` (``converged``); or when an iteration (the first included) ends at a
    higher or non-finite loss: that step is rejected (the point before it is kept, its history
    entry repeats the loss before it) and the run is ``converged`` if the increase is within
    ``ftol`` (no decrease to be found: rounding at the optimum), not if the line search failed
    (non-finite, or a real increase).
    """
    solver = optax.lbfgs(
        memory_size=_LBFGS_MEMORY,
        linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=_MAX_LINESEARCH,
            approx_dec_rtol=ftol,
            initial_guess_strategy="one",
        ),
    )
    f0, g0 = jax.value_and_grad(fun)(x0)
    start_ok = jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0))
    state = _PolishState(
        x=x0,
        f=f0,
        g=g0,
        opt=solver.init(x0),
        it=jnp.asarray(0, jnp.int32),
        n_evals=jnp.asarray(1, jnp.int32),
        losses=jnp.zeros((max_iter,), x0.dtype),
        evals=jnp.zeros((max_iter,), jnp.int32),
        done=~start_ok | (max_iter < 1),
        converged=jnp.asarray(False),
    )

    def body(st: _PolishState) -> _PolishState:
        updates, opt = solver.update(st.g, st.opt, st.x, value=st.f, grad=st.g, value_fn=fun)
        x_new = optax.apply_updates(st.x, updates)
        f_new = optax.tree.get(opt, "value")
        g_new = optax.tree.get(opt, "grad")
        trials = optax.tree.get(opt, "info").num_linesearch_steps
        n_evals = st.n_evals + jnp.asarray(trials, jnp.int32)
        finite = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new))
        accept = finite & (f_new <= st.f)
        small = jnp.abs(st.f - f_new) <= ftol * jnp.abs(st.f)
        # A first step may be short (its direction is the scaled gradient), so only a rejected
        # first step (no decrease found along it) counts as convergence.
        converged = finite & small & ((st.it > 0) | ~accept)
        f = jnp.where(accept, f_new, st.f)
        return _PolishState(
            x=jnp.where(accept, x_new, st.x),
            f=f,
            g=jnp.where(accept, g_new, st.g),
            opt=opt,
            it=st.it + 1,
            n_evals=n_evals,
            losses=st.losses.at[st.it].set(f),
            evals=st.evals.at[st.it].set(n_evals),
            done=~accept | converged | (st.it + 1 >= max_iter),
            converged=converged,
        )

    return lax.while_loop(lambda st: ~st.done, body, state)


def _cov_sites(family: Family) -> tuple[str, ...]:
    """The NumPyro sites of the family's covariance parameters."""
    return tuple(family.site_constraints())


def _site_params(family: Family, values: dict[str, Any], suffix: str) -> MixtureParams:
    """The guide's parameters ``{site}_{suffix}`` as :class:`~jaxmix.MixtureParams` (``cov`` the
    family's NamedTuple of those values)."""
    cov = family.from_site_values({name: values[f"{name}_{suffix}"] for name in _cov_sites(family)})
    return MixtureParams(values[f"mu_{suffix}"], cov, values[f"weights_{suffix}"])


def _make_guide(kind: str, start: MixtureParams, family: Family, init_scale: float) -> Any:
    values = {"mu": start.mu, **family.site_values(start.cov), "weights": start.weights}
    # hide the enumerated z
    exposed = handlers.block(mixture_model, expose=list(site_names(family)))
    if kind == "map":
        return AutoDelta(exposed, init_loc_fn=init_to_value(values=values))
    return AutoNormal(exposed, init_loc_fn=init_to_value(values=values), init_scale=init_scale)


def _point_estimate(values: dict[str, Any], kind: str, family: Family) -> MixtureParams:
    """The point estimate from the guide's (constrained) parameters."""
    if kind == "map":  # AutoDelta holds the constrained values themselves
        return _site_params(family, values, "auto_loc")
    # AutoNormal: the locations in the unconstrained space, mapped to the supports
    return constrain(family, {name: values[f"{name}_auto_loc"] for name in site_names(family)})


def _run(x, mask, start, prior, learning_rate, rng_key, ftol, static: _Static):
    """The whole fit as one traced program (SVI steps, snapshots, L-BFGS polish)."""
    _tracing.note("svi")
    family = get_family(static.covariance)
    model_args = (x, mask, static.K, prior, static.covariance)
    half = max(static.num_steps / 2.0, 1.0)

    def step_size(i):
        decay = jnp.clip((i - half) / half, 0.0, 1.0)
        return learning_rate * _FINAL_LR_RATIO**decay

    svi = SVI(
        mixture_model,
        _make_guide(static.guide, start, family, static.init_scale),
        numpyro.optim.Adam(step_size),
        TraceEnum_ELBO(num_particles=static.num_particles, max_plate_nesting=1),
    )
    state = svi.init(rng_key, *model_args)
    tick = max(static.num_steps // 200, 1)

    def point_of(st):
        return _point_estimate(svi.get_params(st), static.guide, family)

    def step(st, _):
        st, loss = svi.update(st, *model_args)
        if static.progress:
            i = st.optim_state[0]
            lax.cond(
                (i % tick == 0) | (i == static.num_steps),
                lambda: _progress.report(i, loss, label="loss"),
                lambda: None,
            )
        return st, loss

    snapshots = None
    if static.record_every:
        n_chunks, rest = divmod(static.num_steps, static.record_every)

        def chunk(st, _):
            st, losses = lax.scan(step, st, None, length=static.record_every)
            return st, (losses, point_of(st))

        first = point_of(state)
        state, (losses, snaps) = lax.scan(chunk, state, None, length=n_chunks)
        losses = losses.reshape(-1)
        if rest:
            state, tail = lax.scan(step, state, None, length=rest)
            losses = jnp.concatenate([losses, tail])
        snapshots = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, snaps)
    else:
        state, losses = lax.scan(step, state, None, length=static.num_steps)

    out = {"losses": losses, "snapshots": snapshots}
    if static.guide == "map" and static.polish_steps > 0:
        flat0, unravel = ravel_pytree(svi.optim.get_params(state.optim_state))
        key = jax.random.PRNGKey(0)  # unused: a point-mass guide draws nothing

        def loss_fn(flat):
            return svi.loss.loss(
                key, svi.constrain_fn(unravel(flat)), svi.model, svi.guide, *model_args
            )

        # jit: the loss is traced once for its three call sites (the start and the two branches
        # of optax's zoom line search), which shortens the compile.
        lb = _polish(jax.jit(loss_fn), flat0, static.polish_steps, ftol)
        out["point"] = _site_params(family, svi.constrain_fn(unravel(lb.x)), "auto_loc")
        out.update(
            polish_losses=lb.losses,
            polish_evals=lb.evals,
            polish_iter=lb.it,
            polish_total=lb.n_evals,
            converged=lb.converged,
        )
    else:
        out["point"] = point_of(state)
    if static.guide == "meanfield":
        params = svi.get_params(state)
        out["loc"] = _site_params(family, params, "auto_loc")
        out["scale"] = _site_params(family, params, "auto_scale")
    return out


_run_jit = jax.jit(highest(_run), static_argnames=("static",))
_COMPILED: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


def compiled_program(args: tuple, static: Any) -> tuple[Any, float]:
    """The compiled SVI program for these argument shapes and options (the whole fit: Adam steps,
    snapshots, L-BFGS polish), and the seconds compiling it took (0 when reused).

    Compiled ahead of time (``lower().compile()``) so that the compile time is measured apart;
    the last few programs are kept, so a second call with same-shaped data does not recompile.
    """
    leaves, treedef = jax.tree.flatten(args)
    key = (static, treedef, tuple((jnp.shape(v), jnp.result_type(v)) for v in leaves))
    exe = _COMPILED.get(key)
    if exe is not None:
        _COMPILED.move_to_end(key)
        return exe, 0.0
    start = time.perf_counter()
    exe = _run_jit.lower(*args, static=static).compile()
    elapsed = time.perf_counter() - start
    _COMPILED[key] = exe
    while len(_COMPILED) > _CACHE_SIZE:
        _COMPILED.popitem(last=False)
    return exe, elapsed


def _start(init: Any, layout: Any, K: int, seed: int, family: Family) -> MixtureParams:
    """One starting point in data units (float64 NumPy), weights kept off the simplex's edge."""
    start = init_params(init, layout, K, n_init=1, seed=seed, covariance=family)
    if start.mu.shape[0] != 1:
        raise ValueError(
            f"fit_svi takes one starting point; init holds {start.mu.shape[0]} (a restart axis)"
        )
    start = jax.tree.map(lambda a: np.asarray(a[0], np.float64), start)
    weights = start.weights
    if np.any(weights < _MIN_WEIGHT):
        weights = np.maximum(weights, _MIN_WEIGHT)
        start = start._replace(weights=weights / weights.sum())
    return start


def fit_svi(
    X: Any,
    K: int,
    *,
    mask: Any = None,
    guide: str = "map",
    prior: Prior | None = None,
    covariance: Any = "spherical",
    num_steps: int = 1000,
    seed: int = 0,
    init: Any = "kmeans++",
    learning_rate: float = 0.05,
    polish_steps: int = 500,
    init_scale: float = 0.01,
    num_particles: int = 1,
    record_every: int = 0,
    progress: bool = False,
    rank: int | None = None,
    row_offset: bool | None = None,
) -> SVIResult:
    """Fit the mixture by NumPyro SVI: a MAP point estimate or a mean-field posterior.

    The model is :func:`jaxmix.mixture_model`, its discrete site summed out by
    ``TraceEnum_ELBO(max_plate_nesting=1)``; the guide is ``AutoDelta`` (``"map"``) or
    ``AutoNormal`` (``"meanfield"``) over the parameter sites (``weights``, the covariance family's
    sites, ``mu``), started at ``init`` with ``init_to_value``. The optimiser (Adam with a
    decaying step size, then for ``"map"`` an L-BFGS polish), the units and the loss are described
    in :mod:`jaxmix.inference.svi`. For ``"map"``
    the problem is the one :func:`jaxmix.fit_em` solves, with one difference: SVI has no variance
    floor (EM's ``min_var``), so the two optima coincide when EM's floor is inactive (pass
    ``min_var=0`` to EM, or check that no fitted variance sits at it).

    .. math::

        \\text{map:}\\ \\max_{w,\\mu,\\mathrm{var}} \\log p(X, w, \\mu, \\mathrm{var}), \\qquad
        \\text{meanfield:}\\ \\max_q \\mathbb E_q[\\log p(X, \\theta)] + \\mathrm H[q],\\
        q(\\theta) = \\prod_i \\mathcal N(u_i; m_i, s_i^2)\\ \\text{in unconstrained } u

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry (a
            :class:`~jaxmix.SparseRatings` is materialised as a dense matrix, up to
            :data:`jaxmix.data.MAX_DENSE_ENTRIES` entries).
        K: Number of components, ``1 <= K <= n``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed; overrides the ``NaN`` convention.
        guide: ``"map"`` or ``"meanfield"``.
        prior: ``None`` or a :class:`~jaxmix.Prior` (``None`` fields resolved from ``X``). With
            ``"map"``, ``None`` means maximum likelihood (flat improper priors). ``"meanfield"``
            needs a proper prior for a proper posterior: with ``None`` it uses the default
            ``Prior()`` resolved from ``X`` (recorded in ``result.prior``). ``"map"`` needs
            ``alpha >= 1`` (as MAP-EM does).
        covariance: The covariance family (:data:`jaxmix.models.families.FAMILIES`):
            ``"spherical"`` (``var`` ``(K,)``), ``"diag"`` (``(K, d)``), ``"shared"`` (``()``) or
            ``"factor"`` (with ``rank``).
        num_steps: SVI (Adam) steps, ``>= 1``.
        seed: Seed of the named initialisations and of the SVI random stream.
        init: ``"kmeans++"`` (default), ``"random_rows"``, explicit parameters
            (:class:`~jaxmix.MixtureParams`, a mapping with ``mu``, ``var``, ``weights``, or a
            ``(mu, var, weights)`` tuple, in data units) or a previous result (an
            :class:`~jaxmix.EMResult` or :class:`~jaxmix.SVIResult`): the guide's starting
            locations. A spherical ``var`` ``(K,)`` is adapted to the family (repeated over the
            columns for ``"diag"``, pooled for ``"shared"``).
        learning_rate: Adam's step size for the first half of the steps (standardised units);
            it then decays exponentially to 1% of it.
        polish_steps: Maximum L-BFGS iterations (``optax.lbfgs``) after the SVI steps (``"map"``
            only; 0 to skip).
        init_scale: Starting standard deviation of every unconstrained coordinate of the
            mean-field guide (``"meanfield"`` only). Small, so that ``q`` starts close to a point
            mass at ``init`` and widens to the posterior's spread.
        num_particles: Monte Carlo draws per ELBO estimate (``"meanfield"``; a point mass needs 1).
        record_every: Keep the point estimate every ``record_every`` steps (``0``: none); see
            ``SVIResult.snapshots``.
        progress: Show a progress bar of the SVI steps.
        rank, row_offset: ``covariance="factor"`` only (see :func:`jaxmix.fit_em`).

    Returns:
        An :class:`~jaxmix.SVIResult` in data units.

    Raises:
        TypeError, ValueError: On malformed input or options (unknown ``guide`` or
            ``covariance``, ``K`` out of range, ``num_steps < 1``, ...).

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1], [5.2, 5.9]])
        >>> res = jaxmix.fit_svi(X, 2, num_steps=200, polish_steps=50)
        >>> res.mu.shape, res.resp.shape, res.history.shape[0] >= 200
        ((2, 2), (5, 2), True)
        >>> bool(np.isclose(res.objective, jaxmix.log_objective(X, res.params)))
        True
    """
    layout = as_data(X, mask, "dense", what="fit_svi")
    n, d = layout.shape
    K = check_n_components(K, n)
    check_choice(guide, "guide", GUIDES)
    family = get_family(covariance, rank=rank, row_offset=row_offset)
    num_steps = check_positive_int(num_steps, "num_steps")
    polish_steps = check_nonneg_int(polish_steps, "polish_steps")
    record_every = check_nonneg_int(record_every, "record_every")
    num_particles = check_positive_int(num_particles, "num_particles")
    seed = check_seed(seed)
    learning_rate = check_positive_float(learning_rate, "learning_rate")
    init_scale = check_positive_float(init_scale, "init_scale")
    summary = layout.summary()
    if guide == "meanfield":
        polish_steps = 0
        if prior is None:
            prior = Prior()
    if prior is not None:
        prior = resolve_prior(prior, summary)
        if guide == "map" and prior.alpha < 1.0:
            raise ValueError(
                "guide='map' needs Prior.alpha >= 1 (for alpha < 1 the posterior density is "
                "unbounded at an emptied component and has no mode); got alpha = "
                f"{float(prior.alpha)}"
            )

    start = _start(init, layout, K, seed, family)
    std = Standardizer.fit(summary)
    dtype = float_dtype()
    data = layout.device(std, dtype)
    start_internal = as_device(to_internal(start, std), dtype)
    prior_internal = None
    shift = std.log_likelihood_shift(layout.nnz)
    if prior is not None:
        prior_internal = as_device(standardize_prior(prior, std.offset, std.scale), dtype)
        if guide == "map":  # the point mass's log prior carries the Jacobian; q's cancels it
            shift += log_prior_shift(family, K, d, std.scale)
    eps = float(jnp.finfo(dtype).eps)
    args = (
        data.x,
        data.mask > 0,
        start_internal,
        prior_internal,
        jnp.asarray(learning_rate, dtype),
        jax.random.PRNGKey(seed),
        jnp.asarray(max(1e-12, 8.0 * eps), dtype),
    )
    static = _Static(
        K=K,
        covariance=family,
        guide=guide,
        num_steps=num_steps,
        polish_steps=polish_steps,
        record_every=min(record_every, num_steps),
        num_particles=num_particles,
        init_scale=init_scale,
        progress=bool(progress),
    )
    exe, compile_time = compiled_program(args, static)
    with _progress.progress_bar(progress, f"SVI {guide} K={K}", total=num_steps, unit="step"):
        begin = time.perf_counter()
        out = jax.block_until_ready(exe(*args))
        run_time = time.perf_counter() - begin
    out = jax.device_get(out)
    return _to_result(out, layout, data, std, family, static, prior, shift, compile_time, run_time)


def _variational_to_data(
    loc: MixtureParams, scale: MixtureParams, family: Family, std: Standardizer
) -> tuple[MixtureParams, MixtureParams]:
    """The mean-field guide's unconstrained locations and scales in data units.

    ``mu`` is affine in its standardised value (location ``* scale + offset``, sd ``* scale``);
    the stick-breaking coordinates of the weights do not depend on the units. Rescaling the data
    shifts the unconstrained coordinate of a covariance site (``log var`` by ``2 log scale``), so
    its location moves by the image of 0 (mapped to the site's support, rescaled by the family,
    mapped back) and its sd is unchanged.
    """
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    supports = family.site_constraints()
    sites = family.site_values(loc.cov)
    origin = family.from_site_values(
        {name: f64(biject_to(c)(jnp.zeros(np.shape(sites[name])))) for name, c in supports.items()}
    )
    moved = family.site_values(family.rescale(origin, std.scale))
    cov = family.from_site_values(
        {
            name: f64(sites[name]) + f64(biject_to(c).inv(jnp.asarray(moved[name])))
            for name, c in supports.items()
        }
    )
    loc_data = MixtureParams(f64(loc.mu) * std.scale + std.offset, cov, f64(loc.weights))
    scale = jax.tree.map(f64, scale)
    return loc_data, scale._replace(mu=scale.mu * std.scale)


def _to_result(out, layout, data, std, family, static, prior, shift, compile_time, run_time):
    point = out["point"]
    if not all(np.all(np.isfinite(p)) for p in jax.tree.leaves(point)):
        raise FloatingPointError(
            "SVI produced non-finite parameters; lower learning_rate, or enable jax_enable_x64 "
            f"for float64 (now {float_dtype()})"
        )
    params = to_data(point, std)
    losses = np.asarray(out["losses"], np.float64)
    evals = np.arange(1, static.num_steps + 1)
    polish_iter, n_evals, converged = 0, static.num_steps, False
    if "polish_losses" in out:
        polish_iter = int(out["polish_iter"])
        n_evals += int(out["polish_total"])
        converged = bool(out["converged"])
        losses = np.concatenate(
            [losses, np.asarray(out["polish_losses"], np.float64)[:polish_iter]]
        )
        evals = np.concatenate(
            [evals, static.num_steps + np.asarray(out["polish_evals"])[:polish_iter]]
        )
    resp = data.e_step_stats(as_device(point, data.dtype), family, with_stats=False).resp
    loc = scale = None
    if "loc" in out:
        loc, scale = _variational_to_data(out["loc"], out["scale"], family, std)
    snap_steps = snapshots = None
    if out["snapshots"] is not None:
        snapshots = to_data(out["snapshots"], std)
        snap_steps = np.arange(snapshots.mu.shape[0]) * static.record_every
    return SVIResult(
        params=params,
        objective=log_objective(layout, params, prior=prior),
        log_likelihood=log_objective(layout, params),
        history=-(losses - shift),
        num_steps=static.num_steps,
        resp=np.asarray(resp, np.float64),
        guide=static.guide,
        covariance=family.name,
        prior=prior,
        polish_iter=polish_iter,
        converged=converged,
        n_evals=n_evals,
        history_evals=evals.astype(np.int64),
        compile_time=float(compile_time),
        run_time=float(run_time),
        variational_loc=loc,
        variational_scale=scale,
        snapshot_steps=snap_steps,
        snapshots=snapshots,
    )
