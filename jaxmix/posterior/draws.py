"""Posterior draws of a result, and one pass over them on the data.

Shared by :mod:`jaxmix.posterior.predictive` (predictive summaries) and
:mod:`jaxmix.posterior.diagnostics` (ArviZ export): the draws of an MCMC or mean-field SVI
result (:func:`posterior_draws`), the layout's E-step at every draw inside one compiled scan
(:func:`posterior_blocks`: a component per row, the rows' log-likelihoods and the
responsibilities), the predictive moments averaged over the draws (the family's ``predict``) and
one predictive value per entry and draw (:func:`sample_entries`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxmix import _tracing
from jaxmix._precision import highest
from jaxmix.data import Standardizer, float_dtype
from jaxmix.models.families import family_of
from jaxmix.models.mixture import as_device, to_internal
from jaxmix.params import MixtureParams
from jaxmix.posterior.completion import (
    check_fit,
    component_moments,
    predict_entries,
    row_posterior,
)
from jaxmix.results import MCMCResult

__all__ = [
    "PosteriorPass",
    "check_draws",
    "flatten_draws",
    "has_draws",
    "is_meanfield",
    "posterior_draws",
    "posterior_blocks",
    "posterior_moments",
    "posterior_pass",
    "run_posterior_pass",
    "sample_entries",
    "sample_entries_given_rows",
    "take",
]

#: Responsibilities (draws x rows x components) held at once by :func:`posterior_moments`.
_RESP_ELEMENTS = 1 << 22


def is_meanfield(result: Any) -> bool:
    """Whether ``result`` is a mean-field SVI result (duck-typed on ``guide``)."""
    return getattr(result, "guide", None) == "meanfield" and hasattr(result, "sample_posterior")


def has_draws(result: Any) -> bool:
    """Whether ``result`` carries a posterior (MCMC draws or a mean-field ``q``)."""
    return isinstance(result, MCMCResult) or is_meanfield(result)


def posterior_draws(result: Any, num_samples: int, seed: int) -> MixtureParams:
    """Parameter draws with a leading ``(chain, draw)`` shape, float64, data units.

    MCMC results give their (relabelled) draws; mean-field SVI results ``num_samples`` fresh draws
    from ``q`` as one chain.
    """
    if isinstance(result, MCMCResult):
        return jax.tree.map(lambda a: np.asarray(a, np.float64), result.draws)
    if is_meanfield(result):
        sampled = result.sample_posterior(num_samples, seed)
        return jax.tree.map(lambda a: np.asarray(a, np.float64)[None], sampled)
    raise TypeError(
        "expected an MCMCResult (jaxmix.fit_mcmc) or a mean-field SVIResult "
        f"(jaxmix.fit_svi(..., guide='meanfield')); got {type(result).__name__}"
    )


def check_draws(draws: MixtureParams, d: int) -> None:
    """Check batched ``(chain, draw, ...)`` draws against ``d`` columns: shapes, finite ``mu``,
    finite positive variances, finite non-negative ``weights``."""
    check_fit(draws, d, batch=2, label="draws")


def take(draws: MixtureParams, index: Any) -> MixtureParams:
    """``draws[index]`` on the leading axis of every array."""
    return jax.tree.map(lambda a: a[index], draws)


def flatten_draws(draws: MixtureParams) -> MixtureParams:
    """``(chain, draw, ...)`` draws as one axis of ``chain * draw`` draws."""
    return jax.tree.map(lambda a: np.reshape(a, (-1, *np.shape(a)[2:])), draws)


class PosteriorPass(NamedTuple):
    """Per-draw quantities of one pass over parameter draws.

    Attributes:
        z: A component drawn for every row from its responsibilities, ``(S, n)``.
        row_log_lik: Marginal log-likelihood of every row's observed entries, ``(S, n)``.
        resp: The responsibilities, ``(S, n, K)``.
    """

    z: Any
    row_log_lik: Any
    resp: Any


@jax.jit
@highest
def posterior_pass(params: MixtureParams, data: Any, keys: jax.Array) -> PosteriorPass:
    """One scan over parameter draws ``(S, ...)``: the layout's E-step at every draw.

    Args:
        params: Draws with a leading axis ``S`` (standardised units, device arrays).
        data: A dense layout's device arrays (standardised).
        keys: One key per draw, ``(S, 2)``: the draw of every row's component.

    Returns:
        A :class:`PosteriorPass` of device arrays.
    """
    _tracing.note("posterior_pass")

    def body(carry, inputs):
        p, key = inputs
        out = data.e_step_stats(p, family_of(p), with_stats=False)
        z = jax.random.categorical(key, jnp.log(out.resp), axis=-1)
        return carry, (z, out.row_ll, out.resp)

    _, (z, row_ll, resp) = lax.scan(body, None, (params, keys))
    return PosteriorPass(z, row_ll, resp)


def posterior_blocks(
    draws: MixtureParams, layout: Any, keys: jax.Array
) -> Iterator[tuple[slice, PosteriorPass]]:
    """:func:`posterior_pass` on flat draws ``(S, ...)`` in data units, on standardised data, in
    blocks of draws (the responsibilities of a block are at most :data:`_RESP_ELEMENTS` numbers;
    the last block is padded to the same size, so one compiled program serves every block).

    Args:
        draws: Flat draws, float64, data units.
        layout: The dense layout of the data.
        keys: One key per draw, ``(S, 2)``.

    Yields:
        ``(draws' slice, pass)``: host arrays of that block of draws (the row log-likelihood
        shifted back to data units, float64).
    """
    S = int(np.shape(draws.weights)[0])
    n, K = layout.shape[0], int(np.shape(draws.weights)[-1])
    block = min(S, max(1, _RESP_ELEMENTS // max(n * K, 1)))
    std = Standardizer.fit(layout.summary())
    dtype = float_dtype()
    data = layout.device(std, dtype).local()
    internal = as_device(to_internal(draws, std), dtype)
    shift = -np.asarray(layout.row_counts(), np.float64) * math.log(std.scale)
    keys = jnp.asarray(keys)
    for start in range(0, S, block):
        sl = slice(start, min(start + block, S))
        index = np.minimum(np.arange(start, start + block), S - 1)  # the last block padded
        out = jax.device_get(posterior_pass(take(internal, index), data, keys[index]))
        m = sl.stop - sl.start
        yield (
            sl,
            PosteriorPass(
                z=np.asarray(out.z[:m]),
                row_log_lik=np.asarray(out.row_log_lik[:m], np.float64) + shift,
                resp=np.asarray(out.resp[:m], np.float64),
            ),
        )


def run_posterior_pass(
    draws: MixtureParams, layout: Any, keys: jax.Array
) -> tuple[np.ndarray, np.ndarray]:
    """The components drawn for every row and the rows' log-likelihoods (data units) at every
    draw: ``(z (S, n), row_log_lik (S, n))`` (:func:`posterior_blocks`)."""
    S, n = int(np.shape(draws.weights)[0]), layout.shape[0]
    z = np.empty((S, n), np.int64)
    row_ll = np.empty((S, n))
    for sl, passed in posterior_blocks(draws, layout, keys):
        z[sl], row_ll[sl] = passed.z, passed.row_log_lik
    return z, row_ll


def posterior_moments(
    draws: MixtureParams, layout: Any, seed: int, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictive mean and standard deviation of entries averaged over parameter draws
    (Rao-Blackwellised), and a component of every row per draw.

    At every draw the responsibilities come from the layout's E-step and the entries' predictive
    moments from the covariance family (``Family.predict``); the mean is their average, the
    variance the average variance plus the variance of the means over the draws (the law of
    total variance).

    Args:
        draws: Flat draws ``(S, ...)``, float64, data units.
        layout: The dense layout of the data.
        seed: Seed of the components' draws (one key per draw, ``split(PRNGKey(seed), S)``).
        rows, cols: The entries, ``(M,)`` each.

    Returns:
        ``(mean (M,), sd (M,), z (S, n))``.
    """
    family = family_of(draws)
    S, n = int(np.shape(draws.weights)[0]), layout.shape[0]
    keys = jax.random.split(jax.random.PRNGKey(seed), S)
    z = np.empty((S, n), np.int64)
    ref = None  # the first draw's means: the sums are taken around them (no cancellation)
    dev_sum = np.zeros(rows.shape)
    dev_sq_sum = np.zeros(rows.shape)
    var_sum = np.zeros(rows.shape)
    for sl, passed in posterior_blocks(draws, layout, keys):
        z[sl] = passed.z
        for i, s in enumerate(range(sl.start, sl.stop)):
            mean, var = family.predict(take(draws, s), passed.resp[i][rows], cols)
            if ref is None:
                ref = mean
            dev = mean - ref
            dev_sum += dev
            dev_sq_sum += dev * dev
            var_sum += var
    shift = dev_sum / S
    var = var_sum / S + np.maximum(dev_sq_sum / S - shift * shift, 0.0)
    return ref + shift, np.sqrt(var), z


def sample_entries(
    draws: MixtureParams,
    draw_index: np.ndarray,
    z: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """One predictive value per predictive draw and entry: ``mu + sd * N(0, 1)`` of the drawn
    component.

    Args:
        draws: Parameter draws, flat ``(P, ...)``, data units.
        draw_index: Parameter draw of each predictive draw, ``(S,)`` in ``[0, P)``.
        z: Component of every row for each predictive draw, ``(S, n)``.
        rows, cols: The entries, ``(M,)`` each.
        rng: NumPy generator of the noise.

    Returns:
        Array ``(S, M)``.
    """
    mu = np.asarray(draws.mu)
    K, d = mu.shape[-2:]
    var_kd = family_of(draws).var_kd(draws.cov, K, d)  # (P, K, d), a broadcast view
    comp = z[:, rows]  # (S, M)
    p = draw_index[:, None]
    loc = mu[p, comp, cols[None, :]]
    var = var_kd[p, comp, cols[None, :]]
    return loc + np.sqrt(var) * rng.standard_normal(loc.shape)


def sample_mixture(
    resp: np.ndarray, loc: np.ndarray, var: np.ndarray, num_samples: int, rng: Any
) -> np.ndarray:
    """``num_samples`` draws of every entry's mixture ``sum_k resp_k N(loc_k, var_k)``: the
    component from the row's responsibilities, then its Normal; ``(num_samples, m)``."""
    cdf = np.cumsum(resp, axis=1)  # (m, K)
    u = rng.random((num_samples, resp.shape[0], 1)) * cdf[None, :, -1:]
    comp = np.minimum((u > cdf[None]).sum(axis=2), resp.shape[1] - 1)  # (S, m)
    entry = np.arange(resp.shape[0])[None, :]
    noise = rng.standard_normal(comp.shape)
    return loc[entry, comp] + np.sqrt(var[entry, comp]) * noise


def sample_entries_given_rows(
    draws: MixtureParams, layout: Any, rows: np.ndarray, cols: np.ndarray, rng: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior predictive of entries for a family whose prediction depends on the row (the
    factor family, ``Family.row_dependent``): at every parameter draw the rows' E-step
    (responsibilities and the family's per-row posteriors) gives each entry's mixture, from which
    one value is drawn; its moments are averaged over the draws (the law of total variance).

    Returns:
        ``(values (S, M), mean (M,), sd (M,))``.
    """
    S = int(np.shape(draws.weights)[0])
    values = np.empty((S, rows.size))
    dev_sum = np.zeros(rows.size)
    dev_sq_sum = np.zeros(rows.size)
    var_sum = np.zeros(rows.size)
    ref = None
    for s in range(S):
        post = row_posterior(layout, take(draws, s), with_aux=True)
        mean, var = predict_entries(post, rows, cols)
        ref = mean if ref is None else ref
        dev = mean - ref
        dev_sum += dev
        dev_sq_sum += dev * dev
        var_sum += var
        loc, cvar = component_moments(post, rows, cols)
        values[s] = sample_mixture(post.resp[rows], loc, cvar, 1, rng)[0]
    if ref is None:
        return values, np.zeros(rows.size), np.zeros(rows.size)
    shift = dev_sum / S
    var = var_sum / S + np.maximum(dev_sq_sum / S - shift * shift, 0.0)
    return values, ref + shift, np.sqrt(var)
