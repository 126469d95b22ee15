"""The unconstrained coordinates of the mixture's parameters, as NumPyro's inference sees them.

NumPyro's SVI guides and its HMC kernels move every sample site in an unconstrained space and map
it to the site's support with ``biject_to``: the identity for the means, ``exp`` for a variance,
stick-breaking for the weights (``K - 1`` coordinates). :func:`constrain` and
:func:`unconstrain` do that for a whole :class:`~jaxmix.MixtureParams` of any family (the
family names its sites and their supports), and :func:`sample_unconstrained` draws from a
mean-field Normal in those coordinates.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

from jaxmix.data import float_dtype
from jaxmix.models.families import family_of, get_family
from jaxmix.params import MixtureParams

__all__ = [
    "constrain",
    "log_abs_det_jacobian",
    "sample_unconstrained",
    "site_names",
    "unconstrain",
]


def site_names(family: Any) -> tuple[str, ...]:
    """The NumPyro sites of a mixture of ``family``: ``mu``, the family's, ``weights``."""
    return ("mu", *get_family(family).site_constraints(), "weights")


def constrain(family: Any, values: dict[str, Any]) -> MixtureParams:
    """Parameters from the unconstrained values of their sites (arrays with any leading axes)."""
    family = get_family(family)
    cov = family.from_site_values(
        {name: biject_to(c)(values[name]) for name, c in family.site_constraints().items()}
    )
    weights = biject_to(constraints.simplex)(values["weights"])
    return MixtureParams(values["mu"], cov, weights)


def unconstrain(params: MixtureParams) -> dict[str, Any]:
    """The unconstrained values of the parameters' sites (JAX arrays)."""
    family = family_of(params)
    out = {"mu": jnp.asarray(params.mu)}
    sites = family.site_values(params.cov)
    for name, c in family.site_constraints().items():
        out[name] = biject_to(c).inv(jnp.asarray(sites[name]))
    out["weights"] = biject_to(constraints.simplex).inv(jnp.asarray(params.weights))
    return out


def log_abs_det_jacobian(params: MixtureParams) -> Any:
    """``log |d params / d u|`` of the map from the unconstrained coordinates ``u`` to the
    parameters (:func:`constrain`): what NumPyro adds to the log density of the constrained
    sites to get the density of ``u`` (``sum log var`` for the variances, the stick-breaking
    term for the weights, 0 for the means). A scalar; traceable."""
    family = family_of(params)
    u = unconstrain(params)
    sites = family.site_values(params.cov)
    total = jnp.zeros((), jnp.result_type(params.mu))
    for name, c in family.site_constraints().items():
        value = jnp.asarray(sites[name])
        total = total + jnp.sum(biject_to(c).log_abs_det_jacobian(u[name], value))
    weights = jnp.asarray(params.weights)
    simplex = biject_to(constraints.simplex)
    return total + jnp.sum(simplex.log_abs_det_jacobian(u["weights"], weights))


def sample_unconstrained(
    loc: MixtureParams, scale: MixtureParams, num_samples: int, seed: int
) -> MixtureParams:
    """Draws from independent Normals ``N(loc, scale)`` in the unconstrained coordinates, mapped
    to the parameters' supports.

    Args:
        loc, scale: Unconstrained locations and standard deviations of every site, as
            :class:`~jaxmix.MixtureParams` (``cov`` the family's NamedTuple of site values).
        num_samples: Number of draws ``S``.
        seed: Seed of the draws (one key per site, in the order of :func:`site_names`).

    Returns:
        :class:`~jaxmix.MixtureParams` of float64 NumPy arrays with a leading axis ``S``.
    """
    family = family_of(loc)
    dtype = float_dtype()
    names = site_names(family)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(names))

    def fields(p: MixtureParams) -> dict[str, Any]:
        return {"mu": p.mu, **family.site_values(p.cov), "weights": p.weights}

    locs, scales = fields(loc), fields(scale)
    draws = {}
    for key, name in zip(keys, names, strict=True):
        m = jnp.asarray(locs[name], dtype)
        s = jnp.asarray(scales[name], dtype)
        draws[name] = m + s * jax.random.normal(key, (num_samples, *m.shape), dtype)
    return jax.tree.map(lambda a: np.asarray(a, np.float64), constrain(family, draws))
