"""The Gaussian mixture over a partially observed matrix, declared as a NumPyro model.

The same model is fit by EM (:func:`jaxmix.fit_em`, closed-form M-steps) and by NumPyro's
inference (SVI with ``TraceEnum_ELBO``): its log density with the discrete site summed out is
exactly :func:`jaxmix.log_objective` (log-likelihood + log-prior, tested to 1e-9 relative in
float64).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.funsor import config_enumerate
from numpyro.distributions import constraints

from jaxmix._validate import check_positive_int
from jaxmix.models.families import get_family
from jaxmix.models.prior import Prior, check_resolved

__all__ = ["mixture_model"]


def _check(
    X0: Any, mask: Any, K: Any, prior: Prior | None, covariance: Any, rank: Any, row_offset: Any
):
    family = get_family(covariance, rank=rank, row_offset=row_offset)
    K = check_positive_int(K, "K")
    if jnp.ndim(X0) != 2 or jnp.shape(mask) != jnp.shape(X0):
        raise ValueError(
            "X0 must be (n, d) and mask of the same shape; got "
            f"{jnp.shape(X0)} and {jnp.shape(mask)}"
        )
    if prior is not None:
        if any(isinstance(f, jax.core.Tracer) for f in prior):  # traced prior: no host checks
            if not prior.is_resolved:
                raise ValueError("the prior has unresolved (None) fields; call prior.resolve(X)")
            return family, K, prior
        prior = check_resolved(prior, jnp.shape(X0)[1])
    return family, K, prior


@config_enumerate
def mixture_model(
    X0: Any,
    mask: Any,
    K: int,
    prior: Prior | None = None,
    covariance: str = "spherical",
    subsample_size: int | None = None,
    rank: int | None = None,
    row_offset: bool | None = None,
) -> None:
    """NumPyro model of a ``K``-component Gaussian mixture over a partially observed matrix.

    .. math::

        w \\sim \\mathrm{Dir}(\\alpha), \\quad
        \\mu_{kl} \\sim \\mathcal N(m_{0,l}, s_{0,l}^2), \\quad
        \\mathrm{var} \\sim \\mathrm{InvGamma}(a, b), \\quad
        z_u \\sim \\mathrm{Cat}(w), \\quad
        x_{ul} \\mid z_u \\sim \\mathcal N(\\mu_{z_u l}, \\mathrm{var}_{z_u (l)}),\\ l \\in C_u

    Sites (``n`` rows, ``d`` columns):

    ========== ======================= ==================================================
    site       shape                   distribution
    ========== ======================= ==================================================
    weights    ``(K,)`` event          ``Dirichlet(alpha 1_K)``; flat on the simplex
                                       (``ImproperUniform``) when ``prior`` is ``None``
    var        the family's shape      ``InverseGamma(a, b)`` per entry, all in the event
               (``(K,)``, ``(K, d)``,  shape; flat on ``(0, inf)`` when ``prior`` is ``None``
               ``()``), event          (the family's sites: ``Family.sample_cov``)
    mu         ``(K, d)`` event         ``Normal(m0_l, s0_l)`` per entry; flat on the reals
                                       when ``prior`` is ``None``
    z          ``(n,)`` in plate        ``Categorical(weights)``, discrete, marked for
               ``"rows"`` (dim -1)      parallel enumeration (``config_enumerate``)
    x          ``(n,)`` batch,          ``Normal(mu[z], sd).mask(mask).to_event(1)`` observed
               ``(d,)`` event           at ``X0``, ``sd`` the family's ``component_sd(cov, z)``
                                       (``sqrt(var[z])``; ``sqrt(var)`` for ``"shared"``)
    ========== ======================= ==================================================

    The parameter sites have no plate (their whole shape is the event shape), so the only plate is
    ``"rows"`` at dim -1: use ``max_plate_nesting=1`` (``TraceEnum_ELBO(max_plate_nesting=1)``,
    ``enum(..., first_available_dim=-2)``). ``.mask(mask)`` *before* ``.to_event(1)`` drops the
    missing coordinates' terms, so the row's term is the exact observed-data likelihood (a row with
    no observed entry contributes 0). With ``prior=None`` the parameter sites' log densities are 0,
    so the model's log density is the plain log-likelihood (the reference's maximum-likelihood
    model); the discrete site summed out, the log density equals :func:`jaxmix.log_objective`.
    EM's log-likelihood uses ``log(w + 1e-16)`` where NumPyro's ``Categorical`` uses ``log w``: a
    relative difference of order 1e-16 unless a weight is tiny.

    Args:
        X0: ``(n, d)`` values; entries where ``mask`` is False are ignored (``NaN`` allowed, they
            are replaced by 0 before the likelihood sees them).
        mask: ``(n, d)`` boolean (or 0/1), ``True`` = observed.
        K: Number of components (a Python int: shapes are static), ``>= 1``.
        prior: A **resolved** :class:`~jaxmix.Prior` (``prior.resolve(X)``, or ``EMResult.prior``)
            in data units, or ``None`` for flat improper priors.
        covariance: The covariance family, a name of :data:`jaxmix.models.families.FAMILIES`
            or a family object: ``"spherical"`` (``var`` of shape ``(K,)``), ``"diag"``
            (``(K, d)``), ``"shared"`` (``()``) or ``"factor"`` (see ``rank``).
        subsample_size: Optional minibatch size of the ``"rows"`` plate (the likelihood is then
            scaled by ``n / subsample_size``).
        rank, row_offset: The factor family's options (``covariance="factor"``): ``rank``
            factors (sites ``loadings`` ``(K, d, rank)``, ``var`` ``(K, d)`` and, with
            ``row_offset`` (the default), ``offset`` ``(K, 1)``). Its row likelihood is the
            observed coordinates' marginal ``N(mu_kC, W_kC W_kC' + tau_k^2 1 1' + diag(var_kC))``
            with the factors integrated out
            (:class:`~jaxmix.models.families.factor.MaskedLowRankNormal`).

    Example:
        >>> import numpy as np, jax.numpy as jnp, jaxmix
        >>> from numpyro import handlers
        >>> from numpyro.contrib.funsor import enum, log_density
        >>> X = np.array([[1.0, 2.0], [1.5, np.nan], [5.0, 6.0]])
        >>> params = {"weights": jnp.array([0.5, 0.5]), "var": jnp.array([1.0, 2.0]),
        ...           "mu": jnp.array([[1.0, 2.0], [5.0, 6.0]])}
        >>> model = enum(jaxmix.mixture_model, first_available_dim=-2)
        >>> lp, _ = log_density(model, (X, ~np.isnan(X), 2), {}, params)
        >>> bool(jnp.isfinite(lp))
        True

    Raises:
        TypeError: ``K`` is not an integer.
        ValueError: ``K < 1``, an unknown ``covariance``, mismatched shapes, an unresolved or
            malformed prior.
    """
    family, K, prior = _check(X0, mask, K, prior, covariance, rank, row_offset)
    mask = jnp.asarray(mask, dtype=bool)
    X0 = jnp.where(mask, jnp.asarray(X0), 0.0)
    n, d = X0.shape
    dtype = X0.dtype
    if prior is None:
        weights = numpyro.sample("weights", dist.ImproperUniform(constraints.simplex, (), (K,)))
        cov = family.sample_cov(None, K, d, dtype)
        mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), (K, d)))
    else:
        alpha = jnp.asarray(prior.alpha, dtype)
        m0 = jnp.asarray(prior.mean, dtype)
        s0 = jnp.asarray(prior.mean_sd, dtype)
        weights = numpyro.sample("weights", dist.Dirichlet(jnp.full((K,), alpha)))
        cov = family.sample_cov(prior, K, d, dtype)
        mu = numpyro.sample("mu", dist.Normal(m0, s0).expand((K, d)).to_event(2))
    with numpyro.plate("rows", n, dim=-1, subsample_size=subsample_size) as idx:
        z = numpyro.sample("z", dist.Categorical(weights))
        loc = mu[z]  # (n, d), or (K, 1, d) when z is enumerated
        if subsample_size is not None:
            X0, mask = X0[idx], mask[idx]
        numpyro.sample("x", family.row_distribution(loc, cov, z, mask), obs=X0)
