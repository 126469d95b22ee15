"""Blocked Gibbs sampling of the mixture's posterior, as a NumPyro MCMC kernel.

The sampler targets the same posterior as NUTS in :mod:`jaxmix.inference.mcmc` (the model
:func:`jaxmix.mixture_model` under a proper :class:`~jaxmix.Prior`), but moves on the
parameters *and* every row's component ``z_u``, drawing each block from its conditional:

.. math::

    z_u \\mid w, \\mu, \\mathrm{var} &\\sim \\mathrm{Categorical}\\big(p(k \\mid x_{u,C_u})\\big)
        \\propto w_k\\, \\mathcal N(x_{u,C_u}; \\mu_{k,C_u}, \\Sigma_{k,C_u}) \\\\
    \\mu_{kl} \\mid \\mathrm{var}, z &\\sim \\mathcal N(\\cdot), \\quad
    \\mathrm{var} \\mid \\mu, z \\sim \\mathrm{InverseGamma}(\\cdot), \\quad
    w \\mid z \\sim \\mathrm{Dirichlet}(\\alpha + n_k)

The row's responsibilities use only its observed entries ``C_u``: the missing entries stay
integrated out (never imputed), so the chain's stationary distribution is exactly the posterior
of the observed data. The parameter conditionals are the conjugate updates of the prior under
the covariance family (:meth:`Family.draw_conditional
<jaxmix.models.families.base.Family.draw_conditional>`, whose modes are MAP-EM's M-step):
``"spherical"`` draws one variance per component, ``"diag"`` one per component and column,
``"shared"`` one for all. The factor family has no conjugate conditional and is refused
(:data:`GIBBS_COVARIANCES`).

One transition (:func:`sweep`) costs a few EM iterations. Its blocked part: the statistics of
the one-hot assignments are the layout's column sums (``onehot^T X0``, ``onehot^T M`` with the
mask ``M``: :meth:`jaxmix.data.DenseArrays.suff_stats`), then the parameters are drawn, then every
row's component from the row sums of the new parameters
(:meth:`jaxmix.data.DenseArrays.log_joint`), whose log-sum-exp is the log-likelihood at the new
draw (for the potential energy, at no extra cost). The state's ``z`` was drawn given its
``params`` (at :meth:`MixtureGibbs.init` and at the end of every sweep). Each sweep first redraws
every row's component with the means integrated out (:func:`collapsed_assign`, one systematic
scan, a partially collapsed Gibbs step, van Dyk & Park 2008, "Partially collapsed Gibbs
samplers", JASA 103: the means are drawn next, given the new ``z``), which removes the pull of a
row's own contribution to its component's means (about ``|C_u| / n_k`` nats) that keeps the
blocked draw from moving rows between similar components; the blocks run in the order
``z | var, w`` (means integrated out), ``mu, var, w, z | params``. The scan scores every row of a
block of :data:`ROW_BLOCK` rows under every component, inside and outside, with one matrix product
(:meth:`Family.conditional_var <jaxmix.models.families.base.Family.conditional_var>` gives the
variances it reads) and rescores a move with one more. On the course subset (1200 x 1200,
K = 12, 2 CPU cores) the scan takes about 16 ms and moves about 9 rows; the whole sweep, with
the moves below, about 35 ms.

Warm-up: a chain started at the MAP can sit in an assignment of little posterior mass that
rows leave only one at a time, each move unlikely while the others stay. During the first half
of the warm-up the collapsed scan draws from its conditional with the likelihood raised to a
power ``beta`` rising from :data:`WARMUP_BETA` to 1 (:func:`warmup_beta`; an annealed burn-in);
the second half and every kept draw use the exact kernel. On the course subset this moved every
chain to the posterior's assignment within 100 sweeps, where the exact kernel alone took 100 to
1,500.

Groups of rows: each sweep starts with :data:`~jaxmix.inference.gibbs_moves.MOVES` merge or
split moves (:mod:`jaxmix.inference.gibbs_moves`: a group of rows of one component into an empty
component, or a small component's rows into another, in one Metropolis-Hastings step with the
means and the weights integrated out), then draws the weights given the new ``z``. They carry
the groups that a scan of single rows leaves where they are: on the course subset (K = 12, two
chains from the best of 10 EM restarts, 1,500 sweeps, seeds 0, 100, ..., 400) the chains ended
with 42, 9, 16, 11 and 15 rows placed differently with the moves and 184, 9, 16, 11 and 22
without, and at seed 300 both split a 15-row component into two of 7 and 8 rows with a potential
energy about 3,960 lower; they cost about 8 ms of a sweep there.

What the sampler does not do: move rows between the partitions of the larger components. On the
course subset at K = 12 the posterior has several (they differ in where some 15 to 120 rows sit
among four to seven components of 40 to 180 rows), and which one a chain settles in varies with the
start and the chain. The largest ``r_hat`` of two chains over the means, variances and weights
(1,000 draws after 500 warm-up) is within 1.01 at one to three of five starts in every variant
measured: from the best of 10 EM restarts (1.006, 1.010, 1.05, about 1.8 twice), of 40 (two of
five), of 10 refined by split-and-merge EM moves (``fit_em(..., split_merge=30)``; one to three of
five in three tunings), and with the merge and split moves (three runs of their variants: 1.827,
1.009, 1.033, 1.007, 1.007; 1.833, 1.009, 1.033, 1.007, 1.851; 1.158, 1.006, 1.013, 1.835, 1.611;
the current code 1.831, 1.009, 1.033, 1.007, 1.831). The modes are far apart: the chains' mean
potential energies at those five starts span 4,203 (the standard deviation within a chain is
about 90), so the posterior's mass is in the best mode and a chain must start in its basin; the
best of 200 EM restarts refined by split-and-merge rounds still ends at a different optimum from
each of five seeds. ``r_hat`` reports it, and :func:`jaxmix.diagnose` names chains whose log
densities sit at different levels. Moves tried that did not cross: Dahl's sequential allocation
of two components' rows (accepted a third of the time, always re-dealing the same partition) and
Jain & Neal's restricted-Gibbs reallocation between two components from a random launch (each
row's conditional, with hundreds of observed entries, is nearly certain, so the proposal is the
current partition or one hundreds of nats less probable).

:class:`MixtureGibbs` is a :class:`numpyro.infer.mcmc.MCMCKernel`: ``numpyro.infer.MCMC`` runs
it with several chains (``"sequential"`` or ``"vectorized"``), its progress bar and
``get_samples()`` (the draws are :class:`~jaxmix.MixtureParams`). :func:`jaxmix.fit_mcmc` with
``kernel="gibbs"`` runs it instead in one compiled program (:func:`sample_chains`, data and
prior as arguments, so a second fit of same-shaped data reuses it), from the same starts as NUTS,
and returns the same :class:`~jaxmix.MCMCResult`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.special import logsumexp
from numpyro.infer.mcmc import MCMCKernel

from jaxmix import _progress, _tracing
from jaxmix._precision import highest
from jaxmix._validate import check_positive_int
from jaxmix.data import DenseArrays
from jaxmix.inference.collapsed import predictive_tables
from jaxmix.inference.gibbs_moves import merge_split
from jaxmix.models.families import FAMILIES, Family, get_family
from jaxmix.models.families.base import (
    conditional_gammas,
    draw_means,
    draw_variance,
    draw_weights,
)
from jaxmix.models.prior import Prior, log_prior
from jaxmix.models.variational import log_abs_det_jacobian
from jaxmix.params import MixtureParams

__all__ = [
    "GIBBS_COVARIANCES",
    "GibbsDraws",
    "GibbsState",
    "MixtureGibbs",
    "collapsed_assign",
    "dense_arrays",
    "init_state",
    "sample_chains",
    "sweep",
    "warmup_beta",
]

#: The covariance families with conjugate conditionals (``Family.conjugate``: they implement
#: :meth:`Family.draw_conditional <jaxmix.models.families.base.Family.draw_conditional>`).
GIBBS_COVARIANCES = tuple(name for name, f in FAMILIES.items() if f.conjugate)


class GibbsState(NamedTuple):
    """The state of one Gibbs chain (a pytree; NumPyro collects its ``params``).

    Attributes:
        params: The current draw, :class:`~jaxmix.MixtureParams` (the units of the data).
        z: Every row's component, drawn given ``params``, ``(n,)`` int32.
        log_likelihood: ``log p(X | params)`` with the components summed out, a scalar.
        potential_energy: ``-log p(params, X)`` in NumPyro's unconstrained coordinates (the
            log-likelihood, :func:`jaxmix.models.prior.log_prior` and
            :func:`jaxmix.models.variational.log_abs_det_jacobian`), the quantity NUTS reports.
        rng_key: The chain's PRNG key.
        iteration: Sweeps done since :func:`init_state`, int32 (the warm-up's schedule,
            :func:`warmup_beta`, reads it).
    """

    params: MixtureParams
    z: Array
    log_likelihood: Array
    potential_energy: Array
    rng_key: Array
    iteration: Array


class GibbsDraws(NamedTuple):
    """What :func:`sample_chains` returns, per chain ``C`` and kept draw ``S``.

    Attributes:
        params: The draws, :class:`~jaxmix.MixtureParams` with leading axes ``(C, S)``.
        potential_energy: The draws' potential energy (:class:`GibbsState`), ``(C, S)``.
    """

    params: MixtureParams
    potential_energy: Array


def dense_arrays(x0: Any, mask: Any) -> DenseArrays:
    """The device arrays of the dense layout from values and a mask (traceable).

    Args:
        x0: ``(n, d)`` values; entries where ``mask`` is False are ignored (``NaN`` allowed).
        mask: ``(n, d)`` boolean or 0/1, ``True`` = observed.

    Returns:
        :class:`~jaxmix.data.DenseArrays` in the float dtype of ``x0``.
    """
    x0 = jnp.asarray(x0)
    dtype = x0.dtype if jnp.issubdtype(x0.dtype, jnp.floating) else jnp.result_type(float)
    observed = jnp.asarray(mask).astype(bool)
    x = jnp.where(observed, x0, 0.0).astype(dtype)
    m = observed.astype(dtype)
    return DenseArrays(x=x, mask=m, n_obs=jnp.sum(m, axis=1), sq_norm=jnp.sum(x * x, axis=1))


def _assign(
    rng_key: Array, params: MixtureParams, data: DenseArrays, family: Family
) -> tuple[Array, Array]:
    """Every row's component drawn from its responsibilities at ``params``, and the
    log-likelihood ``sum_u logsumexp_k log_joint[u, k]``."""
    log_joint, _ = data.log_joint(params, family)
    z = jax.random.categorical(rng_key, log_joint, axis=-1).astype(jnp.int32)
    return z, jnp.sum(logsumexp(log_joint, axis=1))


#: Rows per block of :func:`collapsed_assign` (the last block overlaps the one before it).
ROW_BLOCK = 256
#: The power of the likelihood in the collapsed scan at the first warm-up sweep
#: (:func:`warmup_beta`).
WARMUP_BETA = 0.3


def collapsed_assign(
    rng_key: Array,
    z: Array,
    params: MixtureParams,
    data: DenseArrays,
    prior: Prior,
    family: Family,
    block: int = ROW_BLOCK,
    beta: Any = 1.0,
) -> Array:
    """One systematic scan over the rows, each component drawn with the means integrated out.

    Row ``u`` (in order) gets a new component from its conditional given the other rows'
    components, the variances and the weights, the means summed out (the Normal prior of every
    ``mu_kl`` is conjugate given the variances):

    .. math::

        p(z_u = k \\mid z_{-u}, \\mathrm{var}, w, X) \\propto w_k \\prod_{l \\in C_u}
        \\mathcal N\\big(x_{ul};\\ m^{-u}_{kl},\\ \\mathrm{var}_{kl} + 1 / \\lambda^{-u}_{kl}\\big),

    with ``lambda^{-u}_kl = 1/s0_l^2 + N^{-u}_kl / var_kl`` and
    ``m^{-u}_kl = (m0_l/s0_l^2 + S^{-u}_kl / var_kl) / lambda^{-u}_kl`` the conditional of
    ``mu_kl`` (:func:`~jaxmix.models.families.base.draw_means`) given the *other* rows of
    component ``k`` (``N`` observed entries of column ``l``, summing to ``S``). Each draw is exact
    and the statistics follow every move, so the scan leaves ``p(z | var, w, X)`` invariant;
    followed by a draw of the means from ``p(mu | z, var, X)`` (:func:`sweep` does that next) it
    leaves the posterior invariant (a partially collapsed Gibbs step; van Dyk & Park 2008). Unlike
    the blocked draw given the means, a row's own contribution to its component's means does not
    hold it there: with ``|C_u|`` observed entries that pull is about ``|C_u| / n_k`` nats, which
    keeps rows of two similar components from changing sides.

    The rows go in blocks of ``block``. A row's score under a component it is not in uses that
    component's statistics; under its own component, the statistics without it, whose
    predictive mean is linear in the row's entry: both are quadratics in the entries with
    coefficients per component and column, so the scores of every row of the block under every
    component, both ways, are one matrix product ``[X0^2, X0, M] @ tables``. The first row whose
    draw moves it is found by one vectorised pass, the move applied, the two components' columns
    rescored (one ``(block, 3d) x (3d, 4)`` product), and the pass resumes after it (the same
    draws, in the same order, as one row at a time, with the same Gumbel noise).

    Args:
        rng_key: A PRNG key.
        z: The rows' components, ``(n,)`` int32.
        params: The current parameters (the variances and the weights are read).
        data: The dense device arrays.
        prior: A resolved prior of arrays in the units of ``data``.
        family: A family with conjugate conditionals (:meth:`Family.conditional_var`).
        block: Rows per block (static; at most ``n`` are used).
        beta: The power of the likelihood terms (traceable): ``1`` is the conditional above;
            below 1 a flattened one, for the warm-up only (:func:`warmup_beta`).

    Returns:
        The new components, ``(n,)`` int32.
    """
    x, mask = data.x, data.mask
    n, d = x.shape
    K = params.weights.shape[-1]
    dtype = x.dtype
    b = min(block, n)
    var = jnp.broadcast_to(family.conditional_var(params.cov), (K, d)).astype(dtype)
    log_w = jnp.log(params.weights).astype(dtype)
    onehot = jax.nn.one_hot(z, K, dtype=dtype)
    obs, total = onehot.T @ mask, onehot.T @ x  # (K, d)
    idx = jnp.arange(b)
    comps = jnp.arange(K)

    def one_block(i, carry):
        z, obs, total = carry
        start = jnp.minimum(i * b, n - b)
        xb = lax.dynamic_slice_in_dim(x, start, b)
        mb = lax.dynamic_slice_in_dim(mask, start, b)
        feats = jnp.concatenate([xb * xb, xb, mb], axis=1)  # (b, 3 d)
        zb = lax.dynamic_slice_in_dim(z, start, b)
        noise = log_w + jax.random.gumbel(jax.random.fold_in(rng_key, i), (b, K), dtype)
        # score[:, :K]: every row outside each component; score[:, K:]: inside (itself removed)
        score = feats @ predictive_tables(obs, total, var, prior.mean, prior.mean_sd)

        def pending(zb, score, after):
            """The rows at or after ``after`` whose draw moves them, and every row's draw."""
            mine = zb[:, None] == comps
            draw = jnp.argmax(beta * jnp.where(mine, score[:, K:], score[:, :K]) + noise, axis=1)
            draw = draw.astype(zb.dtype)
            return (draw != zb) & (idx >= after), draw

        def next_move(carry):
            zb, obs, total, score, moves, draw = carry
            r = jnp.argmax(moves)  # the first row the scan moves
            old, new = zb[r], draw[r]
            obs = obs.at[old].add(-mb[r]).at[new].add(mb[r])
            total = total.at[old].add(-xb[r]).at[new].add(xb[r])
            zb = zb.at[r].set(new)
            # the two components' columns, both ways: one (b, 3d) x (3d, 4) product
            pair = jnp.stack([old, new])
            cols = feats @ predictive_tables(
                obs[pair], total[pair], var[pair], prior.mean, prior.mean_sd
            )
            score = score.at[:, pair].set(cols[:, :2]).at[:, K + pair].set(cols[:, 2:])
            moves, draw = pending(zb, score, r + 1)
            return zb, obs, total, score, moves, draw

        moves, draw = pending(zb, score, 0)
        zb, obs, total, _, _, _ = lax.while_loop(
            lambda c: jnp.any(c[4]), next_move, (zb, obs, total, score, moves, draw)
        )
        return lax.dynamic_update_slice_in_dim(z, zb, start, 0), obs, total

    z, _, _ = lax.fori_loop(0, -(-n // b), one_block, (z, obs, total))
    return z


def _potential(params: MixtureParams, log_likelihood: Array, prior: Prior) -> Array:
    return -(log_likelihood + log_prior(params, prior) + log_abs_det_jacobian(params))


@functools.partial(jax.jit, static_argnames=("family",))
@highest
def init_state(
    rng_key: Array, params: MixtureParams, data: DenseArrays, prior: Prior, family: Family
) -> GibbsState:
    """The state at ``params``: the rows' components drawn given them.

    Args:
        rng_key: A PRNG key.
        params: The start, in the units of ``data``.
        data: The standardised (or any) dense device arrays.
        prior: A resolved prior of arrays in the units of ``data``.
        family: The covariance family (one of :data:`GIBBS_COVARIANCES`).

    Returns:
        A :class:`GibbsState`.
    """
    key, k_z = jax.random.split(rng_key)
    z, ll = _assign(k_z, params, data, family)
    zero = jnp.zeros((), jnp.int32)
    return GibbsState(params, z, ll, _potential(params, ll, prior), key, zero)


def warmup_beta(iteration: Any, num_warmup: int) -> Array:
    """The power of the likelihood in :func:`collapsed_assign` at sweep ``iteration`` (0-based).

    During the first half of the warm-up it rises linearly from :data:`WARMUP_BETA` to 1; from
    then on it is 1, the exact conditional. A chain started at the MAP may sit in an assignment
    the posterior gives little mass, left only by rows moving one at a time, each move unlikely
    while the others stay (on the course subset a group of about 5 rows took 100-1,500 scans
    to change component); the flattened scores let them move, and the second half of the warm-up
    lets the chain settle under the exact kernel. The kept draws are all at ``beta = 1``.

    Args:
        iteration: The sweep's index (traceable).
        num_warmup: Warm-up sweeps (static; ``0``: always 1).

    Returns:
        ``beta``, a scalar in ``[WARMUP_BETA, 1]``.
    """
    ramp = num_warmup // 2
    if ramp == 0:
        return jnp.ones(())
    frac = jnp.asarray(iteration, jnp.float32) / ramp
    return jnp.clip(WARMUP_BETA + (1.0 - WARMUP_BETA) * frac, WARMUP_BETA, 1.0)


@functools.partial(jax.jit, static_argnames=("family",))
@highest
def sweep(
    state: GibbsState, data: DenseArrays, prior: Prior, family: Family, beta: Any = 1.0
) -> GibbsState:
    """One Gibbs transition: merge and split moves of whole groups of rows with the means and
    the weights integrated out (:func:`jaxmix.inference.gibbs_moves.merge_split`), the weights
    given the new ``z``, ``z`` row by row with the means integrated out
    (:func:`collapsed_assign`), the parameters given ``z``, then ``z`` given the parameters.

    The statistics of the one-hot assignments are the layout's column sums (three matrix
    products ``onehot^T M``, ``onehot^T X0`` and, for ``"diag"``, ``onehot^T X0^2``); the family
    draws means, variances and weights from their conditionals
    (:meth:`~jaxmix.models.families.base.Family.draw_conditional`); the new components come from
    the row sums of the new parameters over each row's observed entries.

    Args:
        state: The current :class:`GibbsState` (its ``z`` drawn given its ``params``).
        data: The dense device arrays.
        prior: A resolved prior of arrays in the units of ``data``.
        family: The covariance family.
        beta: The power of the likelihood in the collapsed scan (1: the exact kernel; below 1
            only in warm-up, :func:`warmup_beta`).

    Returns:
        The next :class:`GibbsState`.
    """
    key, k_moves, k_w, k_rows, k_params, k_z = jax.random.split(state.rng_key, 6)
    K, d = state.params.mu.shape[-2:]
    var = jnp.broadcast_to(family.conditional_var(state.params.cov), (K, d))
    z, _ = merge_split(k_moves, state.z, var, data, prior)
    # the moves integrate the weights out: draw them again given the new z before the scan
    n_k = jnp.sum(jax.nn.one_hot(z, K, dtype=data.dtype), axis=0)
    alpha = jnp.asarray(prior.alpha, data.dtype)
    weights = draw_weights(jax.random.loggamma(k_w, alpha + n_k, dtype=data.dtype))
    params = state.params._replace(weights=weights)
    z = collapsed_assign(k_rows, z, params, data, prior, family, beta=beta)
    onehot = jax.nn.one_hot(z, K, dtype=data.dtype)
    stats = data.suff_stats(onehot, family)
    params = family.draw_conditional(k_params, stats, state.params, prior)
    z, ll = _assign(k_z, params, data, family)
    return GibbsState(params, z, ll, _potential(params, ll, prior), key, state.iteration + 1)


def _is_batched(rng_key: Array) -> bool:
    """Whether ``rng_key`` holds one key per chain (NumPyro's ``chain_method="vectorized"``)."""
    if jax.dtypes.issubdtype(jnp.result_type(rng_key), jax.dtypes.prng_key):
        return jnp.ndim(rng_key) > 0
    return jnp.ndim(rng_key) > 1


class MixtureGibbs(MCMCKernel):
    """Blocked Gibbs sampler of :func:`jaxmix.mixture_model`'s posterior (module docstring).

    The model's arguments are ``(X0, mask, prior)``: values ``(n, d)`` (``NaN`` allowed where
    ``mask`` is False), the boolean mask, and a **resolved** :class:`~jaxmix.Prior` in the units
    of ``X0`` (``prior.resolve(X)``). ``init_params`` is a :class:`~jaxmix.MixtureParams` in the
    same units (with a leading chain axis for several chains), or ``None`` to start from a draw of
    the prior. The draws (``get_samples()``) are :class:`~jaxmix.MixtureParams`, not relabelled
    (:func:`jaxmix.relabel` does that; :func:`jaxmix.fit_mcmc` with ``kernel="gibbs"`` also
    standardises the data, starts from MAP-EM and relabels).

    Args:
        K: Number of components.
        covariance: A family of :data:`GIBBS_COVARIANCES` (name or family object).

    Raises:
        ValueError: A covariance family without conjugate conditionals (``"factor"``).

    Example:
        (``numpyro.infer.MCMC`` compiles its own program at every ``run``, so the doctest skips
        the run; ``tests/test_gibbs.py`` runs it.)

        >>> import jax, numpy as np, jaxmix
        >>> from numpyro.infer import MCMC
        >>> from jaxmix.inference.gibbs import MixtureGibbs
        >>> X = jaxmix.simulate_ratings(40, 5, 2, stars=None, seed=0).X
        >>> prior = jaxmix.Prior().resolve(X)
        >>> mcmc = MCMC(MixtureGibbs(2), num_warmup=20, num_samples=30, num_chains=2,
        ...             chain_method="sequential")
        >>> mcmc.run(jax.random.PRNGKey(0), X, ~np.isnan(X), prior)  # doctest: +SKIP
        >>> mcmc.get_samples(group_by_chain=True).mu.shape  # doctest: +SKIP
        (2, 30, 2, 5)
    """

    sample_field = "params"

    def __init__(self, K: int, covariance: Any = "spherical") -> None:
        self.K = check_positive_int(K, "K")
        family = get_family(covariance)
        if family.name not in GIBBS_COVARIANCES:
            raise ValueError(
                f"the Gibbs sampler needs conjugate conditionals; covariance={family.name!r} has "
                f"none. Supported: {', '.join(GIBBS_COVARIANCES)} (use kernel='nuts' for "
                f"{family.name!r})"
            )
        self.family = family
        self._num_warmup = 0

    def __repr__(self) -> str:
        return f"MixtureGibbs(K={self.K}, covariance={self.family.name!r})"

    @property
    def default_fields(self) -> tuple[str, ...]:
        """Collected by ``numpyro.infer.MCMC``: the draws and their potential energy."""
        return ("params", "potential_energy")

    def _model(self, model_args: tuple, model_kwargs: Any) -> tuple[DenseArrays, Prior]:
        args = dict(zip(("X0", "mask", "prior"), model_args, strict=False))
        args.update(model_kwargs or {})
        missing = [name for name in ("X0", "mask", "prior") if name not in args]
        if missing or len(model_args) > 3:
            raise TypeError(
                "MixtureGibbs's model arguments are (X0, mask, prior); missing "
                f"{', '.join(missing) or 'none'}, {len(model_args)} positional given"
            )
        prior = args["prior"]
        if not isinstance(prior, Prior) or not prior.is_resolved:
            raise ValueError(
                "MixtureGibbs needs a resolved jaxmix.Prior in the units of X0 "
                "(prior.resolve(X)); the Gibbs conditionals need a proper prior"
            )
        data = dense_arrays(args["X0"], args["mask"])
        return data, jax.tree.map(lambda a: jnp.asarray(a, data.dtype), prior)

    def _from_prior(self, rng_key: Array, prior: Prior, d: int, dtype: Any) -> MixtureParams:
        """A draw of the prior: the conditionals with no row assigned."""
        k_mu, k_g = jax.random.split(rng_key)
        count = jnp.zeros(self.family.var_shape(self.K, d), dtype)
        g_var, g_w = conditional_gammas(k_g, count, jnp.zeros(self.K, dtype), prior)
        mu = draw_means(
            k_mu, jnp.zeros((self.K, d), dtype), jnp.zeros((self.K, d), dtype), 1.0, prior
        )
        var = draw_variance(g_var, count, prior)
        return MixtureParams(mu, self.family.cov_type(var), draw_weights(g_w))

    def init(
        self,
        rng_key: Array,
        num_warmup: int,
        init_params: Any,
        model_args: tuple,
        model_kwargs: Any,
    ) -> GibbsState:
        """The first state: the rows' components drawn given ``init_params`` (or given a draw of
        the prior when it is ``None``). ``num_warmup`` sets the warm-up's schedule
        (:func:`warmup_beta`); nothing is adapted."""
        self._num_warmup = int(num_warmup)
        if _is_batched(rng_key):
            return jax.vmap(
                lambda key, start: self.init(key, num_warmup, start, model_args, model_kwargs)
            )(rng_key, init_params)
        data, prior = self._model(model_args, model_kwargs)
        d = data.x.shape[1]
        if init_params is None:
            rng_key, key = jax.random.split(rng_key)
            params = self._from_prior(key, prior, d, data.dtype)
        else:
            params = jax.tree.map(lambda a: jnp.asarray(a, data.dtype), init_params)
            if not isinstance(params, MixtureParams) or params.mu.shape != (self.K, d):
                raise ValueError(
                    f"init_params must be a MixtureParams with mu ({self.K}, {d}) per chain"
                )
        return init_state(rng_key, params, data, prior, self.family)

    def sample(self, state: GibbsState, model_args: tuple, model_kwargs: Any) -> GibbsState:
        """One sweep (:func:`sweep`), its collapsed scan flattened during the first half of the
        warm-up (:func:`warmup_beta`)."""
        if _is_batched(state.rng_key):
            return jax.vmap(lambda s: self.sample(s, model_args, model_kwargs))(state)
        data, prior = self._model(model_args, model_kwargs)
        beta = warmup_beta(state.iteration, self._num_warmup)
        return sweep(state, data, prior, self.family, beta)


@functools.partial(
    jax.jit,
    static_argnames=("K", "covariance", "num_warmup", "num_samples", "chain_method", "progress"),
)
@highest
def sample_chains(
    rng_keys: Array,
    init_params: MixtureParams,
    x0: Array,
    mask: Array,
    prior: Prior,
    *,
    K: int,
    covariance: Any,
    num_warmup: int,
    num_samples: int,
    chain_method: str = "sequential",
    progress: bool = False,
) -> GibbsDraws:
    """Gibbs chains of :class:`MixtureGibbs`: warm-up and sampling in one compiled program.

    Args:
        rng_keys: One key per chain, ``(C, 2)``.
        init_params: The start of every chain, :class:`~jaxmix.MixtureParams` with a leading
            axis ``C``, in the units of ``x0``.
        x0: Values, zero at missing entries, ``(n, d)``.
        mask: Boolean ``(n, d)``, ``True`` = observed.
        prior: A resolved :class:`~jaxmix.Prior` of arrays in the units of ``x0``.
        K, covariance: The model (static).
        num_warmup, num_samples: Sweeps per chain, discarded and kept (static).
        chain_method: ``"sequential"`` (``lax.map``) or ``"vectorized"`` (``vmap``) (static).
        progress: Report progress to the host every few sweeps (static).

    Returns:
        A :class:`GibbsDraws` of device arrays.
    """
    _tracing.note("gibbs")
    kernel = MixtureGibbs(K, covariance)
    num_chains = rng_keys.shape[0]
    total = num_warmup + num_samples
    args = (x0, mask, prior)

    def chain(inputs):
        key, start, c = inputs

        def advance(i, state):
            state = kernel.sample(state, args, None)
            if progress:
                _progress.report_chain_step(
                    i + 1, c, total, num_chains, chain_method == "vectorized"
                )
            return state

        state = kernel.init(key, num_warmup, start, args, None)
        # one loop over warm-up and sampling (the sweep is compiled once): warm-up sweeps write
        # into slot 0, which the first kept draw overwrites
        keep = (state.params, state.potential_energy)
        buffer = jax.tree.map(lambda a: jnp.zeros((num_samples, *a.shape), a.dtype), keep)

        def step(i, carry):
            state, buffer = carry
            state = advance(i, state)
            slot = jnp.maximum(i - num_warmup, 0)
            buffer = jax.tree.map(
                lambda b, v: lax.dynamic_update_index_in_dim(b, v, slot, 0),
                buffer,
                (state.params, state.potential_energy),
            )
            return state, buffer

        _, (params, energy) = lax.fori_loop(0, total, step, (state, buffer))
        return GibbsDraws(params, energy)

    inputs = (rng_keys, init_params, jnp.arange(num_chains))
    if chain_method == "vectorized":
        return jax.vmap(chain)(inputs)
    return lax.map(chain, inputs)
