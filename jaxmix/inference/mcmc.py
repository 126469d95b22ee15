"""Full posterior of the mixture by NumPyro's NUTS, with the component of every row summed out.

The sampler runs on :func:`jaxmix.models.mixture_model`: the discrete site ``z`` is enumerated
(funsor sums it out in every evaluation of the potential), so NUTS moves on the continuous
parameters ``(weights, var, mu)`` alone, with target density

.. math::

    p(w, \\mu, \\mathrm{var} \\mid X) \\propto p(w, \\mu, \\mathrm{var})
        \\prod_u \\sum_k w_k\\, \\mathcal N(x_{u,C_u}; \\mu_{k,C_u}, \\Sigma_{k,C_u}),

the exponential of :func:`jaxmix.log_objective` (a proper prior is required: with flat priors the
posterior of a mixture is improper, since an emptied component's parameters are unconstrained).

Three choices are worth knowing:

* **Start.** Every chain starts from the MAP solution of EM with the same prior and covariance
  family (``fit_em(..., prior=prior, min_var=0)``, several restarts). Chain 0 starts exactly at
  it, chains ``1..C-1`` at a jittered copy: Gaussian noise of standard deviation ``jitter`` on
  every *unconstrained* coordinate (``mu``, ``log var``, the stick-breaking coordinates of the
  weights) in the sampler's standardised units, i.e. about one posterior standard deviation of a
  mean for typical data. ``jitter=0`` starts every chain at the MAP. Starting at the mode keeps
  the chains in the mode EM found (the honest statement: this explores *one* labelling of the
  posterior, which is what the relabelled summaries describe); the jitter makes ``r_hat``
  informative within that mode.
* **Units.** As EM does, the sampler runs on a standardised copy of the data (columns centred, one
  power-of-two scale) with the prior mapped exactly to those units; the draws are mapped back, so
  every returned array is in data units. ``potential_energy`` is that of the standardised
  parametrisation (it differs from the data-unit one by a constant).
* **Labels.** The posterior is invariant under permutations of the components, so a chain may
  swap labels. Every draw is relabelled to the reference solution (the MAP) by optimal matching
  (:func:`jaxmix.relabel`); the permutations and their count are returned and every summary
  (``params``, :func:`jaxmix.diagnose`, :func:`jaxmix.to_inference_data`) uses relabelled draws.

The sampler is NumPyro's NUTS kernel in its functional form (``numpyro.infer.hmc.hmc(...,
algo="NUTS")``, the kernel behind ``numpyro.infer.NUTS``) on the model's potential, with warm-up
and sampling loops inside one jit-compiled program (:func:`sample_chains`) that takes the data
and the prior as arguments: a second fit with same-shaped data and the same settings reuses the
compiled program (``numpyro.infer.MCMC`` recompiles on every run, and evaluates the enumerated
potential op by op at initialisation, which costs seconds per fit). Chains run with
``chain_method="sequential"`` (``lax.map`` over chains) or ``"vectorized"`` (``vmap``: in
lockstep). There is no ``"parallel"``: on CPU it would need ``numpyro.set_host_device_count``,
which changes global settings, and jaxmix never does that.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.contrib.funsor import enum
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from jaxmix._data import (
    Standardizer,
    check_n_components,
    check_nonneg_float,
    check_positive_int,
    float_dtype,
    validate_matrix,
)
from jaxmix.diagnostics import relabel
from jaxmix.inference.em import _check_covariance, _check_seed, fit_em
from jaxmix.models.model import mixture_model
from jaxmix.priors import Prior, resolve_prior, standardize_prior
from jaxmix.types import MCMCResult, MixtureParams

__all__ = ["fit_mcmc"]

CHAIN_METHODS = ("sequential", "vectorized")


class ChainDraws(NamedTuple):
    """What :func:`sample_chains` returns: per chain ``C`` and kept draw ``S``.

    Attributes:
        mu, var, weights: Constrained draws (standardised units), ``(C, S, K, d)``,
            ``(C, S, K[, d])``, ``(C, S, K)``.
        diverging, accept_prob, num_steps, potential_energy, step_size: NUTS statistics of every
            draw, ``(C, S)``.
    """

    mu: jax.Array
    var: jax.Array
    weights: jax.Array
    diverging: jax.Array
    accept_prob: jax.Array
    num_steps: jax.Array
    potential_energy: jax.Array
    step_size: jax.Array


_trace_count = 0  # incremented each time the sampler is traced (tests check recompilation)
_progress_bar: Any = None
_PROGRESS_EVERY = 10


def _progress_callback(i):
    if _progress_bar is not None:
        _progress_bar.update(_PROGRESS_EVERY * int(np.size(i)))


@functools.partial(
    jax.jit,
    static_argnames=(
        "K",
        "covariance",
        "num_warmup",
        "num_samples",
        "chain_method",
        "target_accept_prob",
        "max_tree_depth",
        "progress",
    ),
)
def sample_chains(
    rng_keys: jax.Array,
    init_params: dict[str, jax.Array],
    x0: jax.Array,
    mask: jax.Array,
    prior: Prior,
    *,
    K: int,
    covariance: str,
    num_warmup: int,
    num_samples: int,
    chain_method: str = "sequential",
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    progress: bool = False,
) -> ChainDraws:
    """NUTS chains on :func:`jaxmix.mixture_model` with ``z`` enumerated: one compiled program.

    NumPyro's functional NUTS (``numpyro.infer.hmc.hmc(..., algo="NUTS")``, the kernel behind
    ``numpyro.infer.NUTS``) on the potential ``-log p(params, X)`` of the model wrapped in
    ``enum`` (funsor sums the component of every row out; ``numpyro.infer.util.potential_energy``
    with ``enum=True``, the unconstrained parametrisation with its Jacobian). Warm-up
    (step size by dual averaging, diagonal mass matrix by Welford windows) and sampling loops run
    inside XLA; the data and the prior are arguments, so a second call with same-shaped inputs
    reuses the compiled program.

    Args:
        rng_keys: One key per chain, ``(C, 2)``.
        init_params: Unconstrained start per chain: ``mu`` ``(C, K, d)``, ``var`` (``log var``)
            ``(C, K[, d])``, ``weights`` (stick-breaking) ``(C, K - 1)``.
        x0: Values, zero at missing entries, ``(n, d)``.
        mask: Boolean ``(n, d)``, ``True`` = observed.
        prior: A resolved :class:`~jaxmix.Prior` of arrays in the units of ``x0``.
        K, covariance: The model (static).
        num_warmup, num_samples: Iterations per chain (static).
        chain_method: ``"sequential"`` (``lax.map`` over chains) or ``"vectorized"``
            (``vmap``: lockstep, every chain runs as long as the longest trajectory).
        target_accept_prob, max_tree_depth: NUTS settings (static).
        progress: Report progress to the host every few iterations (static).

    Returns:
        A :class:`ChainDraws` of device arrays.
    """
    global _trace_count
    _trace_count += 1
    model = enum(mixture_model, first_available_dim=-2)  # the only plate is "rows" at dim -1

    def potential_fn_gen(x0, mask, prior):
        return functools.partial(
            potential_energy, model, (x0, mask, K, prior, covariance), {}, enum=True
        )

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    args = (x0, mask, prior)

    def advance(i, state):
        state = sample_kernel(state, model_args=args)
        if progress:
            lax.cond(
                (i + 1) % _PROGRESS_EVERY == 0,
                lambda: jax.debug.callback(_progress_callback, i),
                lambda: None,
            )
        return state

    def chain(inputs):
        key, z = inputs
        state = init_kernel(
            z,
            num_warmup,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            model_args=args,
            rng_key=key,
        )
        state = lax.fori_loop(0, num_warmup, advance, state)

        def keep(state, i):
            state = advance(i, state)
            return state, (
                state.z,
                state.diverging,
                state.accept_prob,
                state.num_steps,
                state.potential_energy,
                state.adapt_state.step_size,
            )

        _, out = lax.scan(keep, state, num_warmup + jnp.arange(num_samples))
        z, *stats = out
        var = jnp.exp(z["var"])
        weights = biject_to(constraints.simplex)(z["weights"])
        return ChainDraws(z["mu"], var, weights, *stats)

    if chain_method == "vectorized":
        return jax.vmap(chain)((rng_keys, init_params))
    return lax.map(chain, (rng_keys, init_params))


def _check_nonneg_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return int(value)


def reference_params(init: Any, K: int, d: int, covariance: str) -> MixtureParams:
    """The starting / reference solution from ``init``: checked float64 :class:`MixtureParams`.

    Args:
        init: :class:`~jaxmix.MixtureParams` or a fitted result with ``params``.
        K: Number of components.
        d: Number of columns.
        covariance: ``"spherical"`` or ``"diag"``; a spherical ``var`` ``(K,)`` is broadcast to
            ``(K, d)`` for ``"diag"``.

    Returns:
        The parameters, float64, weights renormalised to sum to one.
    """
    params = init if isinstance(init, MixtureParams) else getattr(init, "params", None)
    if not isinstance(params, MixtureParams):
        raise TypeError(
            "init must be None, MixtureParams or a fitted result (e.g. from fit_em); got "
            f"{type(init).__name__}"
        )
    mu, var, weights = (np.asarray(p, np.float64) for p in params)
    if mu.shape != (K, d) or weights.shape != (K,) or var.shape not in ((K,), (K, d)):
        raise ValueError(
            f"init must have mu ({K}, {d}), weights ({K},) and var ({K},) or ({K}, {d}); got "
            f"{mu.shape}, {weights.shape} and {var.shape}"
        )
    if covariance == "diag" and var.ndim == 1:
        var = np.repeat(var[:, None], d, axis=1)
    if covariance == "spherical" and var.ndim == 2:
        raise ValueError("init has diagonal variances (K, d) but covariance='spherical'")
    if not (np.all(np.isfinite(mu)) and np.all(var > 0) and np.all(weights >= 0)):
        raise ValueError("init must have finite means, positive variances, non-negative weights")
    weights = np.maximum(weights, 1e-12)
    return MixtureParams(mu, var, weights / weights.sum())


def _unconstrained(params: MixtureParams, dtype: Any) -> dict[str, Any]:
    """The sampler's unconstrained coordinates of (standardised) parameters."""
    return {
        "mu": jnp.asarray(params.mu, dtype),
        "var": jnp.log(jnp.asarray(params.var, dtype)),
        "weights": biject_to(constraints.simplex).inv(jnp.asarray(params.weights, dtype)),
    }


def fit_mcmc(
    X: Any,
    K: int,
    *,
    mask: Any = None,
    prior: Prior | None = Prior(),  # noqa: B008 (an immutable NamedTuple)
    covariance: str = "spherical",
    num_chains: int = 2,
    num_warmup: int = 500,
    num_samples: int = 500,
    seed: int = 0,
    init: Any = None,
    jitter: float = 0.1,
    chain_method: str = "sequential",
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    n_init: int = 5,
    progress: bool = False,
) -> MCMCResult:
    """Sample the posterior of the mixture's parameters with NUTS (component summed out).

    .. math::

        (w, \\mu, \\mathrm{var})^{(c, s)} \\sim p(w, \\mu, \\mathrm{var} \\mid x_{u, C_u},\\
            u = 1..n)

    See the module docstring for the start (EM's MAP, jittered per chain), the standardised
    units and the relabelling of the draws.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry.
        K: Number of components, ``1 <= K <= n``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed; overrides the ``NaN`` convention.
        prior: A :class:`~jaxmix.Prior` (its ``None`` fields are resolved from ``X``). It must be
            proper, so ``None`` (flat priors, an improper posterior) is rejected.
        covariance: ``"spherical"`` (``var`` ``(K,)``) or ``"diag"`` (``(K, d)``).
        num_chains: Number of chains ``C``.
        num_warmup: Warm-up (adaptation) iterations per chain, discarded.
        num_samples: Draws ``S`` kept per chain.
        seed: Seed of the sampler (and of EM's restarts and the jitter).
        init: ``None`` (run MAP-EM with ``n_init`` restarts), or the starting and reference
            solution: :class:`~jaxmix.MixtureParams` or a fitted result (e.g. from
            :func:`jaxmix.fit_em` with the same prior).
        jitter: Standard deviation of the noise added to the unconstrained, standardised start
            of chains ``1..C-1`` (``0``: every chain starts at the MAP).
        chain_method: ``"sequential"`` (one chain after the other) or ``"vectorized"`` (all in
            lockstep under ``vmap``); both inside one compiled program (module docstring).
        target_accept_prob: NUTS's target acceptance probability during warm-up.
        max_tree_depth: NUTS's largest tree depth (at most ``2**max_tree_depth - 1`` leapfrog
            steps per draw).
        n_init: EM restarts when ``init`` is ``None``.
        progress: Show a progress bar (tqdm) of the iterations.

    Returns:
        An :class:`~jaxmix.MCMCResult` (NumPy arrays, data units, relabelled draws); its
        ``params`` (the posterior mean) works with :func:`jaxmix.complete`.

    Raises:
        ValueError: ``prior`` is ``None``, or an option is out of range.

    Example:
        >>> import numpy as np, jaxmix
        >>> X = jaxmix.simulate_ratings(40, 5, 2, stars=None, seed=0).X
        >>> res = jaxmix.fit_mcmc(X, 2, num_chains=1, num_warmup=50, num_samples=50)
        >>> res.mu.shape, res.weights.shape
        ((1, 50, 2, 5), (1, 50, 2))
    """
    values, observed = validate_matrix(X, mask)
    n, d = values.shape
    K = check_n_components(K, n)
    covariance = _check_covariance(covariance)
    if prior is None:
        raise ValueError(
            "fit_mcmc needs a proper prior (with flat priors the mixture's posterior is "
            "improper); use prior=jaxmix.Prior() or your own jaxmix.Prior"
        )
    prior = resolve_prior(prior, values, observed)
    num_chains = check_positive_int(num_chains, "num_chains")
    num_samples = check_positive_int(num_samples, "num_samples")
    num_warmup = _check_nonneg_int(num_warmup, "num_warmup")
    seed = _check_seed(seed)
    jitter = check_nonneg_float(jitter, "jitter")
    target_accept_prob = check_nonneg_float(target_accept_prob, "target_accept_prob")
    if not 0.0 < target_accept_prob < 1.0:
        raise ValueError(f"target_accept_prob must lie in (0, 1); got {target_accept_prob}")
    if chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"chain_method must be one of {CHAIN_METHODS}; got {chain_method!r} (jaxmix runs every "
            "chain in one compiled program on one device)"
        )
    max_tree_depth = check_positive_int(max_tree_depth, "max_tree_depth")

    if init is None:
        init = fit_em(
            values,
            K,
            mask=observed,
            n_init=check_positive_int(n_init, "n_init"),
            seed=seed,
            prior=prior,
            covariance=covariance,
            min_var=0.0,
        )
        init_name = "map_em"
    else:
        init_name = "given"
    reference = reference_params(init, K, d, covariance)

    std = Standardizer.fit(values, observed)
    dtype = float_dtype()
    x0 = jnp.asarray(np.where(observed, (values - std.offset) / std.scale, 0.0), dtype)
    prior_internal = standardize_prior(prior, std.offset, std.scale)
    start = std.to_internal(reference)
    # Chain 0 starts at the MAP, chains 1..C-1 at jittered copies (unconstrained coordinates).
    rng = np.random.default_rng(seed)
    unconstrained = {
        name: jnp.concatenate(
            [
                u[None],
                u[None]
                + jitter * jnp.asarray(rng.standard_normal((num_chains - 1, *u.shape)), dtype),
            ]
        )
        for name, u in _unconstrained(start, dtype).items()
    }

    global _progress_bar
    if progress:
        from tqdm.auto import tqdm

        total = num_chains * (num_warmup + num_samples)
        _progress_bar = tqdm(total=total, desc=f"NUTS K={K} x{num_chains}", unit="it")
    try:
        out = sample_chains(
            jax.random.split(jax.random.PRNGKey(seed), num_chains),
            unconstrained,
            x0,
            jnp.asarray(observed),
            Prior(*(jnp.asarray(p, dtype) for p in prior_internal)),
            K=K,
            covariance=covariance,
            num_warmup=num_warmup,
            num_samples=num_samples,
            chain_method=chain_method,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            progress=progress,
        )
        out = jax.device_get(out)
    finally:
        if progress and _progress_bar is not None:
            _progress_bar.close()
            _progress_bar = None

    draws = std.to_data(MixtureParams(out.mu, out.var, out.weights))
    batch = (num_chains, num_samples)
    flat = MixtureParams(*(np.reshape(p, (-1, *np.shape(p)[2:])) for p in draws))
    relabelled, perm = relabel(flat, reference)
    draws = MixtureParams(*(np.reshape(p, (*batch, *np.shape(p)[1:])) for p in relabelled))
    perm = perm.reshape(*batch, K)
    n_relabelled = int(np.any(perm != np.arange(K), axis=-1).sum())
    num_steps = np.asarray(out.num_steps).astype(np.int64)
    return MCMCResult(
        params=MixtureParams(*(p.mean(axis=(0, 1)) for p in draws)),
        mu=draws.mu,
        var=draws.var,
        weights=draws.weights,
        diverging=np.asarray(out.diverging, dtype=bool),
        accept_prob=np.asarray(out.accept_prob, np.float64),
        num_steps=num_steps,
        tree_depth=np.floor(np.log2(np.maximum(num_steps, 1))).astype(np.int64) + 1,
        potential_energy=np.asarray(out.potential_energy, np.float64),
        step_size=np.asarray(out.step_size, np.float64)[:, -1],
        permutation=perm,
        n_relabelled=n_relabelled,
        reference=reference,
        prior=prior,
        covariance=covariance,
        num_warmup=num_warmup,
        init=init_name,
        jitter=jitter,
        seed=seed,
    )
