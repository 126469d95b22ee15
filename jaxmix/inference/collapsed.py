"""Closed forms of a component's entries with its means integrated out, given the variances.

Given the variances, the columns of a component are independent and each mean ``mu_kl`` has the
Normal prior ``N(m0_l, s0_l^2)`` (:class:`~jaxmix.Prior`), so the entries of column ``l`` in the
rows of component ``k`` are jointly Normal with covariance ``var_kl I + s0_l^2 11'``. The Gibbs
sampler's collapsed row scan (:func:`jaxmix.inference.gibbs.collapsed_assign`) scores rows by
the predictive density this implies (:func:`predictive_tables`), and its merge and split moves
(:mod:`jaxmix.inference.gibbs_moves`) weigh whole partitions by the marginal density
(:func:`log_marginal`) and pick anchors by the same predictive scores.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array

__all__ = ["log_marginal", "predictive_tables"]


def predictive_tables(obs: Array, total: Array, var: Array, mean: Any, mean_sd: Any) -> Array:
    """Per-column coefficients of the collapsed predictive scores of components with ``obs``
    observed entries per column summing to ``total`` (both ``(k, d)``) and variances ``var``.

    A row's score under component ``k`` (its means integrated out) is
    ``-1/2 sum_{l in C_u} [(x_ul - m_kl)^2 / t_kl + log t_kl]``, ``m`` and ``t`` the predictive
    mean and variance of an entry of column ``l``. For a row *outside* ``k`` they come from
    ``(obs, total)``; for a row *in* ``k`` from ``(obs - 1, total - x_ul)``, whose mean
    ``c_kl - x_ul / (var_kl lambda'_kl)`` is linear in ``x_ul``, so both scores are quadratics
    ``a x^2 + b x + c`` in the entry with coefficients per component and column. Returns them
    stacked ``(3 d, 2 k)``: rows ``[x^2 | x | 1]``, columns ``[outside | inside]``, so that
    ``[X0^2, X0, M] @ tables`` scores every row under every component both ways.

    ``mean`` and ``mean_sd`` are the means' prior ``N(m0_l, s0_l^2)``, scalars or ``(d,)``.
    """
    s0 = 1.0 / (mean_sd * mean_sd)
    var = jnp.broadcast_to(var, obs.shape)
    prec = s0 + obs / var
    m = (mean * s0 + total / var) / prec
    t = var + 1.0 / prec
    outside = jnp.stack([-0.5 / t, m / t, -0.5 * (m * m / t + jnp.log(t))])
    # inside: the row's own entry removed (columns no row of k observes are never read)
    present = obs >= 0.5
    prec_in = jnp.where(present, s0 + (obs - 1.0) / var, 1.0)
    g = 1.0 + 1.0 / (var * prec_in)
    c = (mean * s0 + total / var) / prec_in
    t_in = var + 1.0 / prec_in
    inside = jnp.stack([-0.5 * g * g / t_in, g * c / t_in, -0.5 * (c * c / t_in + jnp.log(t_in))])
    inside = jnp.where(present, inside, 0.0)
    k = obs.shape[0]
    # (3, k, d) each -> (3 d, 2 k)
    both = jnp.concatenate([outside, inside], axis=1)  # (3, 2k, d)
    return jnp.swapaxes(both, 1, 2).reshape(3 * obs.shape[1], 2 * k)


def log_marginal(sq: Array, total: Array, count: Array, var: Array, s2: Array) -> Array:
    """``log p`` of a component's entries with its means integrated out, summed over the
    columns (last axis): per column ``l`` with ``N`` entries about the prior mean (sum ``T``,
    sum of squares ``Q``, ``SS = Q - T^2 / N``),
    ``-1/2 [N log(2 pi v) + log(1 + N s2 / v) + SS / v + T^2 / (N (v + N s2))]``; a column
    without entries adds 0.

    Args:
        sq, total, count: ``Q``, ``T`` and ``N``, ``(..., d)``, of the entries minus ``m0``.
        var: The variances ``v``, broadcastable to them.
        s2: The means' prior variance ``s0^2``, ``(d,)`` or scalar.

    Returns:
        ``(...)``.
    """
    safe = jnp.maximum(count, 1.0)
    ss = sq - total * total / safe
    shrink = total * total / (safe * (var + count * s2))
    terms = count * jnp.log(2.0 * jnp.pi * var) + jnp.log1p(count * s2 / var) + ss / var
    return -0.5 * jnp.sum(jnp.where(count > 0, terms + shrink, 0.0), axis=-1)
