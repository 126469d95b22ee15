"""Full posterior of the mixture by NumPyro's NUTS, with the component of every row summed out.

The sampler runs on :func:`jaxmix.models.mixture_model`: the discrete site ``z`` is enumerated
(funsor sums it out in every evaluation of the potential), so NUTS moves on the continuous
parameters ``(weights, var, mu)`` alone (``var`` standing for the covariance family's sites), with
target density

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
  swap labels. Every draw is relabelled to the reference solution (the MAP) by the rows its
  components explain: the draw's component ``j`` is matched to the reference's ``k`` by the
  permutation of least total ``-sum_u r_uk log p(z_u = j | x_u, draw)``, ``r`` the reference's
  responsibilities (Hungarian algorithm; :func:`jaxmix.relabel` with ``X``,
  :func:`jaxmix.models.mixture.responsibility_costs`: one E-step per draw on the device, in
  chunks of draws). A component that explains no row in the draw (an emptied one, whose
  parameters are draws of the prior) cannot displace one that does, as it can when matching
  means. The permutations and their count are returned and every summary (``params``,
  :func:`jaxmix.diagnose`, :func:`jaxmix.to_inference_data`) uses relabelled draws.

Every covariance family works (:data:`jaxmix.models.families.FAMILIES`): the family names the
model's covariance sites and their supports, and the unconstrained coordinates of a start and the
constrained values of a draw go through :func:`jaxmix.models.variational.unconstrain` and
:func:`~jaxmix.models.variational.constrain`.

The sampler is NumPyro's NUTS kernel in its functional form (``numpyro.infer.hmc.hmc(...,
algo="NUTS")``, the kernel behind ``numpyro.infer.NUTS``) on the model's potential, with warm-up
and sampling loops inside one jit-compiled program (:func:`sample_chains`) that takes the data
and the prior as arguments: a second fit with same-shaped data and the same settings reuses the
compiled program (``numpyro.infer.MCMC`` recompiles on every run, and evaluates the enumerated
potential op by op at initialisation, which costs seconds per fit). Chains run with
``chain_method="sequential"`` (``lax.map`` over chains) or ``"vectorized"`` (``vmap``: in
lockstep). There is no ``"parallel"``: on CPU it would need ``numpyro.set_host_device_count``,
which changes global settings, and jaxmix never does that.

``kernel="gibbs"`` samples the same posterior with the blocked Gibbs sampler of
:mod:`jaxmix.inference.gibbs` (every row's component drawn given the parameters, then the
parameters from their conjugate conditionals): same starts, units, relabelling and
:class:`~jaxmix.MCMCResult`; each draw costs about one EM iteration instead of a NUTS trajectory
of enumerated-likelihood gradients. Its draws have no NUTS statistics (no divergences, every draw
accepted, no leapfrog steps or step size); their ``potential_energy`` is the same quantity.
It needs conjugate conditionals, so the factor family is NUTS only.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.contrib.funsor import enum
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from jaxmix import _progress, _tracing
from jaxmix._precision import highest
from jaxmix._validate import (
    check_n_components,
    check_nonneg_float,
    check_nonneg_int,
    check_positive_int,
    check_seed,
)
from jaxmix.data import Standardizer, as_data, float_dtype
from jaxmix.inference import gibbs
from jaxmix.inference.em import fit_em
from jaxmix.models.families import Family, as_params, family_of, get_family
from jaxmix.models.mixture import (
    as_device,
    match_responsibilities,
    permute_components,
    to_data,
    to_internal,
)
from jaxmix.models.numpyro_model import mixture_model
from jaxmix.models.prior import Prior, resolve_prior, standardize_prior
from jaxmix.models.variational import constrain, unconstrain
from jaxmix.params import MixtureParams
from jaxmix.results import MCMCResult

__all__ = [
    "CHAIN_METHODS",
    "KERNELS",
    "ChainDraws",
    "fit_mcmc",
    "reference_params",
    "sample_chains",
]

CHAIN_METHODS = ("sequential", "vectorized")
#: The samplers :func:`fit_mcmc` runs: NUTS on the enumerated model, or blocked Gibbs.
KERNELS = ("nuts", "gibbs")


class ChainDraws(NamedTuple):
    """What :func:`sample_chains` returns: per chain ``C`` and kept draw ``S``.

    Attributes:
        params: Constrained draws (standardised units), :class:`~jaxmix.MixtureParams` with
            leading axes ``(C, S)``.
        diverging, accept_prob, n_leapfrog, potential_energy, step_size: NUTS statistics of every
            draw, ``(C, S)`` (``n_leapfrog``: the trajectory's leapfrog steps, NumPyro's
            ``num_steps``).
    """

    params: MixtureParams
    diverging: jax.Array
    accept_prob: jax.Array
    n_leapfrog: jax.Array
    potential_energy: jax.Array
    step_size: jax.Array


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
@highest
def sample_chains(
    rng_keys: jax.Array,
    init_params: dict[str, jax.Array],
    x0: jax.Array,
    mask: jax.Array,
    prior: Prior,
    *,
    K: int,
    covariance: Any,
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
        init_params: Unconstrained start per chain, the model's sites
            (:func:`jaxmix.models.variational.unconstrain`) with a leading axis ``C``: ``mu``
            ``(C, K, d)``, the family's sites (``var``: ``log var``), ``weights``
            (stick-breaking) ``(C, K - 1)``.
        x0: Values, zero at missing entries, ``(n, d)``.
        mask: Boolean ``(n, d)``, ``True`` = observed.
        prior: A resolved :class:`~jaxmix.Prior` of arrays in the units of ``x0``.
        K, covariance: The model (static; ``covariance`` a family object or name).
        num_warmup, num_samples: Iterations per chain (static).
        chain_method: ``"sequential"`` (``lax.map`` over chains) or ``"vectorized"``
            (``vmap``: lockstep, every chain runs as long as the longest trajectory).
        target_accept_prob, max_tree_depth: NUTS settings (static).
        progress: Report progress to the host every few iterations (static).

    Returns:
        A :class:`ChainDraws` of device arrays.
    """
    _tracing.note("mcmc")
    model = enum(mixture_model, first_available_dim=-2)  # the only plate is "rows" at dim -1
    num_chains = rng_keys.shape[0]
    total = num_warmup + num_samples

    def potential_fn_gen(x0, mask, prior):
        return functools.partial(
            potential_energy, model, (x0, mask, K, prior, covariance), {}, enum=True
        )

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    args = (x0, mask, prior)

    def chain(inputs):
        key, z, c = inputs

        def advance(i, state):
            state = sample_kernel(state, model_args=args)
            if progress:
                _progress.report_chain_step(
                    i + 1, c, total, num_chains, chain_method == "vectorized"
                )
            return state

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
        return ChainDraws(constrain(covariance, z), *stats)

    inputs = (rng_keys, init_params, jnp.arange(num_chains))
    if chain_method == "vectorized":
        return jax.vmap(chain)(inputs)
    return lax.map(chain, inputs)


def reference_params(init: Any, K: int, d: int, covariance: Any) -> MixtureParams:
    """The starting / reference solution from ``init``: checked float64 :class:`MixtureParams`.

    Args:
        init: :class:`~jaxmix.MixtureParams` or a fitted result with ``params``.
        K: Number of components.
        d: Number of columns.
        covariance: The covariance family (a name or a family). Parameters of another family are
            converted where the family can hold them (``Family.cov_from_var``: a spherical
            ``var`` ``(K,)`` is repeated over the columns for ``"diag"``, averaged for
            ``"shared"``).

    Returns:
        The parameters, float64, weights renormalised to sum to one.
    """
    family = get_family(covariance)
    want = family.var_shape(K, d)
    try:
        params = as_params(init, what="init")
    except TypeError:
        raise TypeError(
            "init must be None, MixtureParams or a fitted result (e.g. from fit_em); got "
            f"{type(init).__name__}"
        ) from None
    except ValueError as err:
        raise ValueError(
            f"init must have mu ({K}, {d}), weights ({K},) and var {want} "
            f"(covariance={family.name!r}): {err}"
        ) from None
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    source = family_of(params)
    mu, weights, var = params.mu, params.weights, np.asarray(params.var)
    if mu.shape != (K, d) or weights.shape != (K,) or var.shape != source.var_shape(K, d):
        raise ValueError(
            f"init must have mu ({K}, {d}), weights ({K},) and var {want} "
            f"(covariance={family.name!r}); got {mu.shape}, {weights.shape} and {var.shape}"
        )
    cov = params.cov
    if source != family:
        try:
            cov = family.cov_from_var(var, K, d)
        except ValueError:
            raise ValueError(
                f"init has {source.name} variances {var.shape} but covariance={family.name!r}; "
                "a start converts only to a family that can hold its variances (e.g. spherical "
                "to diagonal)"
            ) from None
    if not (np.all(np.isfinite(mu)) and np.all(np.asarray(cov.var) > 0) and np.all(weights >= 0)):
        raise ValueError("init must have finite means, positive variances, non-negative weights")
    weights = np.maximum(weights, 1e-12)
    return MixtureParams(mu, cov, weights / weights.sum())


def _chain_starts(
    start: MixtureParams, num_chains: int, jitter: float, seed: int, dtype: Any
) -> dict[str, jax.Array]:
    """Chain 0 at ``start``, chains ``1..C-1`` at jittered copies (unconstrained coordinates,
    standardised units)."""
    rng = np.random.default_rng(seed)
    starts = {}
    for name, u in unconstrain(start).items():
        u = jnp.asarray(u, dtype)
        noise = jnp.asarray(rng.standard_normal((num_chains - 1, *u.shape)), dtype)
        starts[name] = jnp.concatenate([u[None], u[None] + jitter * noise])
    return starts


def fit_mcmc(
    X: Any,
    K: int,
    *,
    mask: Any = None,
    prior: Prior | None = Prior(),  # noqa: B008 (an immutable NamedTuple)
    covariance: Any = "spherical",
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
    rank: int | None = None,
    row_offset: bool | None = None,
    kernel: str = "nuts",
    split_merge: int = 0,
) -> MCMCResult:
    """Sample the posterior of the mixture's parameters with NUTS (component summed out) or
    blocked Gibbs.

    .. math::

        (w, \\mu, \\Sigma)^{(c, s)} \\sim p(w, \\mu, \\Sigma \\mid x_{u, C_u},\\ u = 1..n)

    See the module docstring for the start (EM's MAP, jittered per chain), the standardised
    units and the relabelling of the draws, and :mod:`jaxmix.inference.gibbs` for the Gibbs
    sampler.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry (a
            :class:`~jaxmix.SparseRatings` is made dense, up to
            :data:`jaxmix.data.MAX_DENSE_ENTRIES` entries: the model is the dense one).
        K: Number of components, ``1 <= K <= n``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed; overrides the ``NaN`` convention.
        prior: A :class:`~jaxmix.Prior` (its ``None`` fields are resolved from ``X``). It must be
            proper, so ``None`` (flat priors, an improper posterior) is rejected.
        covariance: The covariance family (:data:`jaxmix.models.families.FAMILIES`):
            ``"spherical"`` (``var`` ``(K,)``), ``"diag"`` (``(K, d)``), ``"shared"`` (``()``) or
            ``"factor"`` (with ``rank``).
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
        target_accept_prob: NUTS's target acceptance probability during warm-up (NUTS only).
        max_tree_depth: NUTS's largest tree depth (at most ``2**max_tree_depth - 1`` leapfrog
            steps per draw; NUTS only).
        n_init: EM restarts when ``init`` is ``None``.
        progress: Show a progress bar (tqdm) of the iterations.
        rank, row_offset: ``covariance="factor"`` only (see :func:`jaxmix.fit_em`).
        kernel: ``"nuts"`` (NUTS with the component summed out) or ``"gibbs"`` (Gibbs,
            :mod:`jaxmix.inference.gibbs`: the families of
            :data:`~jaxmix.inference.gibbs.GIBBS_COVARIANCES`; warm-up is burn-in, its first
            half with the rows' scores flattened, :func:`~jaxmix.inference.gibbs.warmup_beta`).
            Both sample the same posterior.
        split_merge: Rounds of split-and-merge moves on the MAP-EM start (``init=None`` only;
            :func:`jaxmix.fit_em`): a higher posterior mode to start from and to relabel to. (It
            does not make chains agree that settle in different partitions of the rows: on the
            course subset at K = 12 the Gibbs chains agreed at 1 to 3 of 5 seeds with it,
            1 or 2 without; see :mod:`jaxmix.inference.gibbs`.)

    Returns:
        An :class:`~jaxmix.MCMCResult` (NumPy arrays, data units, relabelled draws in
        ``draws``); its ``params`` (the posterior mean) works with :func:`jaxmix.complete`.

    Raises:
        ValueError: ``prior`` is ``None``, ``kernel="gibbs"`` with the factor family, or an
            option is out of range.
        TypeError: An option has the wrong type.

    Example:
        >>> import numpy as np, jaxmix
        >>> X = jaxmix.simulate_ratings(40, 5, 2, stars=None, seed=0).X
        >>> res = jaxmix.fit_mcmc(X, 2, num_chains=1, num_warmup=50, num_samples=50)
        >>> res.draws.mu.shape, res.draws.weights.shape, res.mu.shape
        ((1, 50, 2, 5), (1, 50, 2), (2, 5))
    """
    layout = as_data(X, mask, "dense", what="fit_mcmc")
    n, d = layout.shape
    K = check_n_components(K, n)
    family = get_family(covariance, rank=rank, row_offset=row_offset)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    if kernel == "gibbs" and family.name not in gibbs.GIBBS_COVARIANCES:
        raise ValueError(
            f"kernel='gibbs' needs conjugate conditionals, which covariance={family.name!r} does "
            f"not have; Gibbs supports covariance in {gibbs.GIBBS_COVARIANCES} (use "
            "kernel='nuts' for this family)"
        )
    if prior is None:
        raise ValueError(
            "fit_mcmc needs a proper prior (with flat priors the mixture's posterior is "
            "improper); use prior=jaxmix.Prior() or your own jaxmix.Prior"
        )
    summary = layout.summary()
    prior = resolve_prior(prior, summary)
    num_chains = check_positive_int(num_chains, "num_chains")
    num_samples = check_positive_int(num_samples, "num_samples")
    num_warmup = check_nonneg_int(num_warmup, "num_warmup")
    seed = check_seed(seed)
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
            layout.values,
            K,
            mask=layout.observed,
            n_init=check_positive_int(n_init, "n_init"),
            seed=seed,
            prior=prior,
            covariance=family,
            min_var=0.0,
            split_merge=split_merge,
        )
        init_name = "map_em"
    else:
        if check_nonneg_int(split_merge, "split_merge"):
            raise ValueError(
                "split_merge refines the MAP-EM start fit_mcmc runs itself (init=None); pass "
                "fit_em(..., split_merge=N) as init instead"
            )
        init_name = "given"
    reference = reference_params(init, K, d, family)

    std = Standardizer.fit(summary)
    dtype = float_dtype()
    data = layout.device(std, dtype)
    prior_internal = standardize_prior(prior, std.offset, std.scale)
    starts = _chain_starts(to_internal(reference, std), num_chains, jitter, seed, dtype)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_chains)
    total = num_chains * (num_warmup + num_samples)
    settings = (data, std, reference, prior, family, num_warmup, init_name, jitter, seed)

    if kernel == "gibbs":
        # the same chains, started from the same (constrained) points, by conjugate sweeps
        run, label, finish = gibbs.sample_chains, "Gibbs", _gibbs_result
        start, options = constrain(family, starts), {}
    else:
        run, label, finish = sample_chains, "NUTS", _to_result
        start = starts
        options = {"target_accept_prob": target_accept_prob, "max_tree_depth": max_tree_depth}
    with _progress.progress_bar(progress, f"{label} K={K} x{num_chains}", total=total, unit="it"):
        out = run(
            keys,
            start,
            data.x,
            jnp.asarray(layout.observed),
            as_device(prior_internal, dtype),
            K=K,
            covariance=family,
            num_warmup=num_warmup,
            num_samples=num_samples,
            chain_method=chain_method,
            progress=progress,
            **options,
        )
        out = jax.device_get(out)
    return finish(out, *settings)


def _gibbs_result(out: gibbs.GibbsDraws, *settings: Any) -> MCMCResult:
    """The Gibbs sampler's output as an MCMCResult: no divergences, every draw accepted, no
    leapfrog steps (0) and no step size (NaN)."""
    C, S = np.shape(out.potential_energy)
    zeros = np.zeros((C, S))
    stats = ChainDraws(out.params, zeros > 0, zeros + 1.0, zeros, out.potential_energy, zeros)
    return _to_result(stats, *settings)._replace(
        tree_depth=np.zeros((C, S), np.int64), step_size=np.full(C, np.nan), kernel="gibbs"
    )


def _to_result(
    out: ChainDraws,
    data: Any,
    std: Standardizer,
    reference: MixtureParams,
    prior: Prior,
    family: Family,
    num_warmup: int,
    init_name: str,
    jitter: float,
    seed: int,
) -> MCMCResult:
    """The sampler's output in data units, relabelled to ``reference`` by the data's
    responsibilities (on the standardised ``data``), as an MCMCResult."""
    K = reference.n_components
    perm = match_responsibilities(out.params, to_internal(reference, std), data)
    draws = permute_components(to_data(out.params, std), perm)
    n_relabelled = int(np.any(perm != np.arange(K), axis=-1).sum())
    n_leapfrog = np.asarray(out.n_leapfrog).astype(np.int64)
    return MCMCResult(
        params=jax.tree.map(lambda a: a.mean(axis=(0, 1)), draws),
        draws=draws,
        diverging=np.asarray(out.diverging, dtype=bool),
        accept_prob=np.asarray(out.accept_prob, np.float64),
        n_leapfrog=n_leapfrog,
        tree_depth=np.floor(np.log2(np.maximum(n_leapfrog, 1))).astype(np.int64) + 1,
        potential_energy=np.asarray(out.potential_energy, np.float64),
        step_size=np.asarray(out.step_size, np.float64)[:, -1],
        permutation=perm,
        n_relabelled=n_relabelled,
        reference=reference,
        prior=prior,
        covariance=family.name,
        num_warmup=num_warmup,
        init=init_name,
        jitter=jitter,
        seed=seed,
    )
