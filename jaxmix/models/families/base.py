"""What a covariance family is: the :class:`Family` interface, and the pieces families share.

A family owns everything about the mixture that depends on the shape of the components'
covariances, and nothing else does:

* its parameters: a NamedTuple (``SphericalCov``, ``DiagCov``, ...) carried as
  ``MixtureParams.cov``, with their shapes, checks, units (:meth:`Family.rescale`) and relabelling
  (:meth:`Family.permute`);
* the log density of a row's observed entries under every component, written against the two
  kinds of sums a data layout provides (:mod:`jaxmix.data.base`): :meth:`Family.row_tables` and
  :meth:`Family.log_joint`;
* the expected sufficient statistics (:meth:`Family.stat_weights`, :meth:`Family.row_totals`,
  :meth:`Family.suff_stats`), the ML / MAP M-step (:meth:`Family.m_step`) and, where the prior
  is conjugate, the draw of the parameters from their conditionals given hard assignments
  (:meth:`Family.draw_conditional`, the parameter block of the Gibbs sampler);
* its prior terms (:meth:`Family.log_prior_cov`, :meth:`Family.log_jacobian`), its number of free
  parameters, its NumPyro sites (:meth:`Family.sample_cov`, :meth:`Family.component_sd`) and the
  predictive moments of a missing entry (:meth:`Family.predict`).

The generic pieces (weights, means, the variance floor, and their conditional draws) are the
functions of this module, so a family module only says what is its own. A family is a stateless
object, hashable, passed to compiled functions as a static argument.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array
from jax.scipy.special import gammaln
from numpyro.distributions import constraints

__all__ = [
    "WEIGHT_EPS",
    "Family",
    "conditional_gammas",
    "draw_means",
    "draw_variance",
    "draw_weights",
    "floor_variance",
    "update_means",
    "update_weights",
]

#: Added to the weights inside the logarithm, so that an emptied component's log weight stays
#: finite (the reference's convention).
WEIGHT_EPS = 1e-16


def update_weights(n_k: Array, n_rows: Array, prior: Any) -> Array:
    """The weights' M-step: ``n_k / n`` (ML) or ``(n_k + alpha - 1) / (n + K (alpha - 1))``
    (the Dirichlet's mode, MAP)."""
    if prior is None:
        return n_k / n_rows
    alpha = jnp.asarray(prior.alpha, n_k.dtype)
    K = n_k.shape[0]
    return (n_k + alpha - 1.0) / (n_rows + K * (alpha - 1.0))


def update_means(obs_k: Array, sum_k: Array, mu_old: Array, var_kd: Array, prior: Any) -> Array:
    """The means' M-step given the variances ``var_kd`` ``(K, d)``.

    ML: ``sum_k / obs_k`` where ``obs_k >= 1``, the old mean elsewhere. MAP: the Normal prior's
    conjugate update ``(m0 / s0^2 + sum_k / var) / (1 / s0^2 + obs_k / var)`` everywhere.
    """
    if prior is None:
        update = obs_k >= 1.0
        return jnp.where(update, sum_k / jnp.where(update, obs_k, 1.0), mu_old)
    m0 = jnp.asarray(prior.mean, sum_k.dtype)
    s0 = jnp.asarray(prior.mean_sd, sum_k.dtype)
    prec0 = 1.0 / (s0 * s0)
    return (m0 * prec0 + sum_k / var_kd) / (prec0 + obs_k / var_kd)


def update_variance(resid: Array, count: Array, var_old: Array, min_var: Any, prior: Any) -> Array:
    """A variance's M-step from the expected squared residual and entry count.

    ML: ``resid / count`` (the old value where ``count`` is 0); MAP: the InverseGamma's
    conditional mode ``(resid + 2 b) / (count + 2 a + 2)``; then :func:`floor_variance`.
    """
    resid = jnp.maximum(resid, 0.0)
    if prior is None:
        has_obs = count > 0
        var = jnp.where(has_obs, resid / jnp.where(has_obs, count, 1.0), var_old)
    else:
        a = jnp.asarray(prior.var_shape, resid.dtype)
        b = jnp.asarray(prior.var_scale, resid.dtype)
        var = (resid + 2.0 * b) / (count + 2.0 * a + 2.0)
    return floor_variance(var, min_var)


def floor_variance(var: Array, min_var: Any) -> Array:
    """``var`` floored at ``min_var`` and, so that a fit never degenerates, at the dtype's machine
    epsilon."""
    eps = jnp.finfo(var.dtype).eps
    return jnp.maximum(jnp.maximum(var, min_var), eps)


def conditional_gammas(rng_key: Array, count: Array, n_k: Array, prior: Any) -> tuple[Array, Array]:
    """The Gamma variables behind the variances' and the weights' conditionals, in one draw.

    ``log G_var ~ log Gamma(a + count / 2, 1)`` (one per variance, ``count`` the entries it
    governs) and ``log G_w ~ log Gamma(alpha + n_k, 1)`` (one per component), all independent:
    :func:`draw_variance` and :func:`draw_weights` turn them into the conditional draws. Their
    shapes do not depend on the means, so they are drawn before them, by one call of
    ``jax.random.loggamma`` (one rejection sampler in the compiled sweep, and log-space: a
    Gamma of a small shape does not underflow to 0).

    Args:
        rng_key: A PRNG key.
        count: Entries governed by each variance, the variances' shape.
        n_k: Rows assigned to every component, ``(K,)``.
        prior: A resolved prior in the kernels' units (``var_shape``, ``alpha``).

    Returns:
        ``(log G_var, log G_w)``, of the shapes of ``count`` and ``n_k``.
    """
    dtype = n_k.dtype
    count = jnp.asarray(count, dtype)
    a = jnp.asarray(prior.var_shape, dtype)
    alpha = jnp.asarray(prior.alpha, dtype)
    shapes = jnp.concatenate([jnp.ravel(a + 0.5 * count), alpha + n_k])
    log_g = jax.random.loggamma(rng_key, shapes, dtype=dtype)
    return log_g[: count.size].reshape(count.shape), log_g[count.size :]


def draw_weights(log_gamma: Array) -> Array:
    """The weights' conditional draw from :func:`conditional_gammas`' ``log G_w``.

    .. math::

        w \\mid z \\sim \\mathrm{Dirichlet}(\\alpha + n_1, \\dots, \\alpha + n_K),
        \\qquad n_k = |\\{u : z_u = k\\}|,

    drawn as ``G_k / sum_j G_j`` (the softmax of ``log G``): the conjugate update of
    :func:`update_weights`' Dirichlet prior, whose mode is that MAP step.

    Args:
        log_gamma: ``log G_w``, ``(K,)``.

    Returns:
        ``(K,)`` weights on the simplex.
    """
    return jax.nn.softmax(log_gamma)


def draw_means(rng_key: Array, obs_k: Array, sum_k: Array, var_kd: Array, prior: Any) -> Array:
    """Draw the means from their conditional given the variances and hard assignments.

    Every ``mu_kl`` is independent given ``var`` and ``z``: the Normal prior's conjugate update,

    .. math::

        \\mu_{kl} \\mid \\mathrm{var}, z \\sim \\mathcal N\\Big(
            \\frac{m_{0,l}/s_{0,l}^2 + S_{kl}/\\mathrm{var}_{kl}}{\\lambda_{kl}},\\
            \\lambda_{kl}^{-1}\\Big), \\qquad
        \\lambda_{kl} = \\frac{1}{s_{0,l}^2} + \\frac{N_{kl}}{\\mathrm{var}_{kl}},

    with ``N_kl`` the observed entries of column ``l`` in the rows of component ``k`` and
    ``S_kl`` their sum (the mean is :func:`update_means`' MAP step).

    Args:
        rng_key: A PRNG key.
        obs_k, sum_k: ``N_kl`` and ``S_kl``, ``(K, d)``.
        var_kd: The variances, broadcastable to ``(K, d)``.
        prior: A resolved prior in the kernels' units (``mean``, ``mean_sd``).

    Returns:
        ``(K, d)`` means.
    """
    s0 = jnp.asarray(prior.mean_sd, sum_k.dtype)
    prec = 1.0 / (s0 * s0) + obs_k / var_kd
    loc = update_means(obs_k, sum_k, None, var_kd, prior)
    return loc + jax.random.normal(rng_key, sum_k.shape, sum_k.dtype) / jnp.sqrt(prec)


def draw_variance(log_gamma: Array, resid: Array, prior: Any) -> Array:
    """Variances' conditional draw from :func:`conditional_gammas`' ``log G_var``.

    .. math::

        \\mathrm{var} \\mid \\mu, z \\sim \\mathrm{InverseGamma}\\big(a + N / 2,\\
            b + R / 2\\big)

    with ``N`` the entries the variance governs (the ``count`` of :func:`conditional_gammas`)
    and ``R`` their squared residuals to their component's means: the conjugate update of the
    InverseGamma prior, whose mode is :func:`update_variance`'s MAP step. Drawn as
    ``(b + R / 2) / G`` with ``G ~ Gamma(a + N / 2, 1)``.

    Args:
        log_gamma: ``log G_var``, the shape of ``resid``.
        resid: ``R`` (clamped at 0 against rounding).
        prior: A resolved prior in the kernels' units (``var_scale``).

    Returns:
        Variances of the shape of ``resid``.
    """
    b = jnp.asarray(prior.var_scale, resid.dtype)
    return (b + 0.5 * jnp.maximum(resid, 0.0)) * jnp.exp(-log_gamma)


def inverse_gamma_log_density(var: Array, prior: Any) -> Array:
    """Sum of ``log InvGamma(var; a, b)`` over every entry of ``var`` (normalisers included)."""
    dtype = var.dtype
    a = jnp.asarray(prior.var_shape, dtype)
    b = jnp.asarray(prior.var_scale, dtype)
    return jnp.sum(a * jnp.log(b) - gammaln(a) - (a + 1.0) * jnp.log(var) - b / var)


class Estimation(NamedTuple):
    """How uncertain a point fit's per-column estimates are (a family's
    :meth:`Family.estimation_cov`), so that its predictions can say so.

    Attributes:
        coef: The posterior (co)variance of each component's per-column coefficients: ``(K, d)``
            variances of the means ``mu_kl``, or ``(K, d, c, c)`` for a family with ``c``
            coefficients per column (the factor family: ``[loadings, mean]``).
        noise: ``E[var_kl | data] - var_kl``, ``(K, d)``: how much the noise variance's posterior
            mean exceeds its estimate (the estimate is a mode, fit to the same entries as the
            coefficients).
    """

    coef: Any
    noise: Any


def noise_excess(var: np.ndarray, count: Any, n_coef: int, prior: Any) -> np.ndarray:
    """``E[var | data] - var`` for a variance estimated from ``count`` entries after fitting
    ``n_coef`` coefficients to them.

    With the InverseGamma(a, b) prior the coefficients integrated out leave the posterior
    ``IG(a + (N - c) / 2, b + RSS / 2)``, whose mean is ``var (N + 2a + 2) / (N + 2a - c - 2)``
    times EM's conditional mode ``var``; without a prior (a flat prior on ``log var``) the mean
    is ``var N / (N - c - 2)``. Where the denominator would fall below one entry it is held at
    one (a variance fit to almost nothing stays wide, not infinite).
    """
    N = np.asarray(count, np.float64)
    if prior is None:
        top, extra = np.maximum(N, 1.0), 0.0
    else:
        extra = 2.0 * float(np.asarray(prior.var_shape))
        top = N + extra + 2.0
    ratio = top / np.maximum(N + extra - n_coef - 2.0, 1.0)
    return var * np.maximum(ratio - 1.0, 0.0)


class Family:
    """A covariance family. Subclasses set :attr:`name` and :attr:`cov_type` and implement the
    methods that raise ``NotImplementedError`` here.

    Every traced method takes unbatched parameters in the kernels' (standardised) units;
    host methods take float64 NumPy values in data units unless they say otherwise.
    """

    #: The name users pass as ``covariance=``.
    name: str = ""
    #: The NamedTuple class of the family's parameters (``MixtureParams.cov``).
    cov_type: type = tuple
    #: A one-line description (``jaxmix.models.families.describe``).
    summary: str = ""
    #: Every column shares a component's variance (spherical, shared): columns on very
    #: different scales then let the widest decide the clusters
    #: (:func:`jaxmix.models.mixture.warn_column_scales` warns).
    one_column_variance: bool = False
    #: EM's steps call jaxlib's batched LAPACK kernels (Cholesky, triangular solves): on one
    #: host, split over as many CPU devices as XLA has threads, those kernels wait for each
    #: other's threads and the fit hangs, so :func:`jaxmix.fit_em` refuses such a mesh.
    batched_solves: bool = False

    def __repr__(self) -> str:
        return f"<covariance family {self.name!r}>"

    # ------------------------------------------------------------------ configuration

    #: The options :meth:`configure` takes (``("rank", "row_offset")`` for the factor family).
    options: tuple[str, ...] = ()

    def configure(self, **options: Any) -> Family:
        """This family with other options (a family without options takes none)."""
        if options:
            raise TypeError(
                f"covariance={self.name!r} takes no options; got {', '.join(sorted(options))} "
                "(rank and row_offset apply to covariance='factor')"
            )
        return self

    def for_cov(self, cov: Any) -> Family:
        """The family of given parameters (for a family with options, read off their shapes)."""
        return self

    # ------------------------------------------------------------------ shapes and checks

    def var_shape(self, K: int, d: int) -> tuple[int, ...]:
        """Shape of ``cov.var``."""
        raise NotImplementedError

    def n_parameters(self, K: int, d: int) -> int:
        """Free parameters of a ``K``-component mixture on ``d`` columns (means, covariance
        parameters, ``K - 1`` weights)."""
        return K * d + int(np.prod(self.var_shape(K, d), dtype=np.int64)) + (K - 1)

    def check_cov(self, cov: Any, K: int, d: int, batch: int = 0, label: str = "fitted") -> Any:
        """Refuse covariance parameters no fit can produce (wrong shape, not finite, not
        positive); returns a float64 copy. ``batch`` leading axes are allowed."""
        return self.cov_type(self.check_var(cov, K, d, batch, label))

    def check_var(self, cov: Any, K: int, d: int, batch: int = 0, label: str = "fitted") -> Any:
        """:meth:`check_cov` for the variances ``cov.var``: their float64 copy."""
        var = np.asarray(cov.var, np.float64)
        lead = var.shape[:batch]
        want = (*lead, *self.var_shape(K, d))
        noun = "draws'" if label == "draws" else label
        if var.shape != want:
            raise ValueError(
                f"the {noun} variances have shape {var.shape}; the {self.name} family needs {want}"
            )
        if not np.all(np.isfinite(var) & (var > 0)):
            raise ValueError(f"{label} var must be finite and positive")
        return var

    def cov_from_var(self, var: Any, K: int, d: int, *, batch: int = 0) -> Any:
        """The family's parameters from a variance array given by a user (explicit starting
        points, files): ``var`` must have :meth:`var_shape` (after ``batch`` axes)."""
        var = np.asarray(var, np.float64)
        if var.shape[batch:] != self.var_shape(K, d):
            raise ValueError(
                f"init var must have shape {self.var_shape(K, d)} per restart for "
                f"covariance={self.name!r}; got {var.shape}"
            )
        return self.cov_type(var)

    def from_component_variances(
        self, var: np.ndarray, weights: np.ndarray, d: int, seed: int = 0
    ) -> Any:
        """Covariance parameters from one variance per component (what the named
        initialisations give): ``var`` and ``weights`` ``(K,)``; ``seed`` for a family whose
        start has random parts."""
        raise NotImplementedError

    # ------------------------------------------------------------------ units and labels

    def rescale(self, cov: Any, factor: Any) -> Any:
        """The parameters of the data multiplied by ``factor`` (variances times ``factor^2``)."""
        return cov._replace(var=cov.var * factor * factor)

    def split_direction(self, cov: Any, k: int) -> np.ndarray | None:
        """The direction ``(d,)`` along which a split-and-merge move
        (:mod:`jaxmix.inference.split_merge`) puts the two halves of component ``k`` (its means
        ``mu_k +/- direction``), or ``None`` (default): no direction the parameters single out,
        the move draws a random one."""
        return None

    def permute(self, cov: Any, perm: Any) -> Any:
        """The parameters with the components reordered: component ``k`` becomes ``perm[k]``
        (``perm`` ``(..., K)`` over the leading axes of ``cov``)."""
        var = np.asarray(cov.var)
        perm = np.asarray(perm)
        lead = perm.ndim - 1
        return cov._replace(var=np.take_along_axis(var, _expand(perm, var.ndim - lead - 1), lead))

    def var_kd(self, cov: Any, K: int, d: int) -> Any:
        """The variance of every component in every column, ``(..., K, d)`` (NumPy)."""
        raise NotImplementedError

    def conditional_var(self, cov: Any) -> Array:
        """The variance of every entry given its component, as JAX arrays broadcastable to
        ``(K, d)`` (traceable; :meth:`var_kd` is its NumPy twin): what the means' conditional
        (:func:`draw_means`) and the Gibbs sampler's collapsed row update read. Families
        with conjugate conditionals implement it.

        Raises:
            TypeError: The family has no conjugate conditionals (:attr:`conjugate` is False).
        """
        raise TypeError(
            f"covariance={self.name!r} has no conjugate conditionals (no variances given the "
            "component for the means' conditional); sample it with NUTS"
        )

    def covariance_matrix(self, cov: Any, K: int, d: int) -> np.ndarray:
        """Every component's full covariance matrix, ``(K, d, d)`` (NumPy, float64): for the
        families whose entries are independent given the component, ``diag(var_kd)``."""
        var = np.asarray(self.var_kd(cov, K, d), np.float64)
        return var[..., :, None] * np.eye(d)

    # ------------------------------------------------------------------ the E-step

    def row_tables(self, params: Any) -> Any:
        """Per-column coefficients of the row sums the log density needs (:class:`RowTables`)."""
        raise NotImplementedError

    def row_gram(self, params: Any) -> Any:
        """The row sums of :meth:`row_tables` as a Gram matrix of per-entry vectors
        (:class:`~jaxmix.data.base.GramTables`), for a family whose features have that form, or
        ``None`` (the default). A layout that gathers per-column values per entry (triples) uses
        it when given: fewer values per entry, the same sums."""
        return None

    def log_joint(self, params: Any, sums: Array, rows: Any) -> tuple[Array, Any]:
        """``log w_k + log N(x_{u,C_u}; component k)`` for every row and component, ``(r, K)``,
        from the row sums of :meth:`row_tables` ``(r, F)`` and the rows' :class:`RowInfo`; and
        whatever per-row quantities :meth:`stat_weights` needs (``aux``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the M-step

    def weight_sizes(self, params: Any) -> tuple[int, int, int]:
        """``ColWeights.sizes`` of :meth:`stat_weights` (static)."""
        raise NotImplementedError

    def stat_weights(self, resp: Array, aux: Any) -> Any:
        """Per-row weights whose column sums are the statistics (:class:`ColWeights`)."""
        raise NotImplementedError

    def row_totals(self, resp: Array, rows: Any) -> Any:
        """Statistics that are sums over rows (linear in ``resp``): a pytree of arrays."""
        raise NotImplementedError

    def aux_totals(self, resp: Array, aux: Any) -> Any:
        """Sums over rows of ``log_joint``'s per-row ``aux`` weighted by ``resp`` (a pytree of
        arrays), for a family whose M-step needs them; ``None`` (the default) for none."""
        return None

    def suff_stats(self, cols: tuple, totals: Any, n_rows: Array, aux_totals: Any = None) -> Any:
        """The family's statistics from the column sums ``(c0, c1, c2)`` (``(d, G_p)``), the row
        totals, the number of rows and the :meth:`aux_totals`."""
        raise NotImplementedError

    def m_step(self, stats: Any, params: Any, min_var: Any, prior: Any = None) -> Any:
        """Maximum-likelihood (``prior=None``) or MAP update of the parameters."""
        raise NotImplementedError

    #: Whether the parameters' conditionals given hard assignments are conjugate under the prior
    #: (closed-form draws): the family implements :meth:`draw_conditional`, and the Gibbs sampler
    #: (:mod:`jaxmix.inference.gibbs`) runs on it.
    conjugate: bool = False

    def variance_stats(self, stats: Any, mu: Array) -> tuple[Array, Array]:
        """The entries every variance governs and their squared residuals to ``mu``, both in
        the shape of the variances (traceable): what the variances' conditional
        (:func:`draw_variance`) reads. Families with conjugate conditionals implement it.

        Args:
            stats: The family's statistics (:meth:`suff_stats`) of one-hot responsibilities.
            mu: Means ``(K, d)``.

        Returns:
            ``(count, resid)``.

        Raises:
            TypeError: The family has no conjugate conditionals (:attr:`conjugate` is False).
        """
        raise TypeError(
            f"covariance={self.name!r} has no conjugate conditionals (no variances given the "
            "means); sample it with NUTS"
        )

    def draw_conditional(self, rng_key: Array, stats: Any, params: Any, prior: Any) -> Any:
        """Draw the parameters from their conditionals given hard assignments (Gibbs).

        ``stats`` are the family's statistics of one-hot responsibilities (every row assigned to
        one component); the draw runs the blocks of the M-step in its order, each from its
        conditional posterior under ``prior`` instead of its mode: the means given the current
        variances (:func:`draw_means`), the variances given the new means
        (:func:`draw_variance`, :meth:`variance_stats`), the weights (:func:`draw_weights`),
        the last two from one draw of Gamma variables (:func:`conditional_gammas`). Each block
        leaves the posterior of :func:`jaxmix.mixture_model` with ``z`` observed invariant. A
        family without conjugate conditionals (the factor family) keeps :attr:`conjugate` False.

        Args:
            rng_key: A PRNG key.
            stats: The family's statistics (:meth:`suff_stats`) of one-hot responsibilities.
            params: The current parameters (standardised units; the variances are read).
            prior: A resolved prior of arrays in the same units (required).

        Returns:
            The new parameters.

        Raises:
            TypeError: The family has no conjugate conditionals (:attr:`conjugate` is False).
        """
        if not self.conjugate:
            raise TypeError(
                f"covariance={self.name!r} has no conjugate conditionals to draw from (its Gibbs "
                "conditionals are not closed form); sample it with NUTS"
            )
        k_mu, k_g = jax.random.split(rng_key)
        mu = draw_means(k_mu, stats.obs_k, stats.sum_k, self.conditional_var(params.cov), prior)
        count, resid = self.variance_stats(stats, mu)
        g_var, g_w = conditional_gammas(k_g, count, stats.n_k, prior)
        var = draw_variance(g_var, resid, prior)
        return params._replace(mu=mu, cov=self.cov_type(var), weights=draw_weights(g_w))

    # ------------------------------------------------------------------ the prior

    def log_prior_cov(self, cov: Any, prior: Any) -> Array:
        """Log density of the covariance parameters under a resolved prior (InverseGamma on
        every variance)."""
        return inverse_gamma_log_density(cov.var, prior)

    def log_jacobian(self, K: int, d: int, scale: float) -> float:
        """Add this to the covariance parameters' log prior in standardised units to get it in
        data units: ``-2 log(scale)`` per variance."""
        n_var = int(np.prod(self.var_shape(K, d), dtype=np.int64))
        return -2.0 * n_var * math.log(scale)

    # ------------------------------------------------------------------ NumPyro

    def sample_cov(self, prior: Any, K: int, d: int, dtype: Any) -> Any:
        """The covariance parameters as NumPyro sample sites (``"var"``): ``InverseGamma(a, b)``
        per entry, or flat on ``(0, inf)`` without a prior."""
        shape = self.var_shape(K, d)
        if prior is None:
            var = numpyro.sample("var", dist.ImproperUniform(constraints.positive, (), shape))
        else:
            a = jnp.asarray(prior.var_shape, dtype)
            b = jnp.asarray(prior.var_scale, dtype)
            var = numpyro.sample("var", dist.InverseGamma(a, b).expand(shape).to_event(len(shape)))
        return self.cov_type(var)

    def component_sd(self, cov: Any, z: Array) -> Array:
        """Standard deviation of every coordinate of a row drawn from component ``z``,
        broadcastable against ``mu[z]``."""
        raise NotImplementedError

    def row_distribution(self, loc: Array, cov: Any, z: Array, mask: Array) -> Any:
        """The NumPyro distribution of a row's observed entries given its component ``z``
        (event shape ``(d,)``; the entries where ``mask`` is False are integrated out):
        independent Normals masked per entry."""
        return dist.Normal(loc, self.component_sd(cov, z)).mask(mask).to_event(1)

    def site_constraints(self) -> dict[str, Any]:
        """The support of every NumPyro site of the parameters, in the order of the fields."""
        return {"var": constraints.positive}

    def site_values(self, cov: Any) -> dict[str, Any]:
        """The NumPyro sites' values of the parameters (``{"var": ...}``)."""
        return {"var": cov.var}

    def from_site_values(self, values: dict[str, Any]) -> Any:
        """The parameters from NumPyro sites' values."""
        return self.cov_type(values["var"])

    # ------------------------------------------------------------------ prediction

    #: Whether a component's prediction of a missing entry depends on the row's observed entries
    #: (beyond the responsibilities): the factor family's does, through the row's factors.
    row_dependent: bool = False

    def entry_moments(
        self, params: Any, cols: np.ndarray, aux: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every component's predictive mean and variance of entries ``(m,)`` in columns
        ``cols`` given their rows, ``(m, K)`` each (NumPy float64): here ``mu_kl`` and the
        component's variance; ``aux`` (the rows' ``aux``, one per entry) is unused."""
        mu = np.asarray(params.mu, np.float64)
        K, d = mu.shape
        var_kd = np.asarray(self.var_kd(params.cov, K, d), np.float64)
        return mu[:, cols].T, var_kd[:, cols].T

    def estimation_cov(self, stats: Any, params: Any, prior: Any = None) -> Estimation:
        """How uncertain the fitted per-column estimates are, given the E-step's statistics at
        ``params`` (NumPy float64, in the units of ``params``).

        Here ``coef`` is the posterior variance of every mean ``mu_kl``, ``(K, d)``,

        .. math::

            \\mathrm{var}(\\mu_{kl}) = \\Big(\\frac{N_{kl}}{\\sigma^2_{kl}}
                + \\frac{1}{s_{0,l}^2}\\Big)^{-1},
            \\qquad N_{kl} = \\sum_u p(k \\mid u) [l \\in C_u]

        (the Normal prior's conjugate update with the variances held at their estimate; without
        a prior ``sigma^2_kl / max(N_kl, 1)``: a column the component has not seen counts as one
        entry), and ``noise`` the excess of the variances' posterior mean over their estimate
        (:func:`noise_excess`, with the entries and coefficients :meth:`noise_count` names).
        Added to the predictive variance of a point estimate (:meth:`estimation_variance`), so
        that a column rated a handful of times gets wider intervals than one rated thousands of
        times.

        Args:
            stats: The family's sufficient statistics at ``params`` (host arrays).
            params: The fitted parameters.
            prior: The prior in the same units, or ``None`` (maximum likelihood).
        """
        mu = np.asarray(params.mu, np.float64)
        K, d = mu.shape
        var = np.asarray(self.var_kd(params.cov, K, d), np.float64)
        obs = np.asarray(stats.obs_k, np.float64)
        if prior is None:
            coef = var / np.maximum(obs, 1.0)
        else:
            s0 = np.asarray(prior.mean_sd, np.float64)
            coef = 1.0 / (obs / var + 1.0 / (s0 * s0))
        count, n_coef = self.noise_count(stats, K, d)
        noise = noise_excess(var, np.broadcast_to(count, (K, d)), n_coef, prior)
        return Estimation(coef, noise)

    def noise_count(self, stats: Any, K: int, d: int) -> tuple[Any, int]:
        """The (expected) entries each variance is estimated from, broadcastable to ``(K, d)``,
        and the coefficients fitted to them: here one variance per component and column, after
        its mean."""
        return np.asarray(stats.obs_k, np.float64), 1

    def estimation_variance(self, est: Any, cols: np.ndarray, aux: Any = None) -> np.ndarray:
        """The variance :meth:`estimation_cov` adds to each component's prediction of entries in
        columns ``cols`` ``(m,)`` given their rows' ``aux``, ``(m, K)``: here
        ``var(mu_kl) + noise_kl``."""
        coef = np.asarray(est.coef, np.float64)
        return (coef[:, cols] + np.asarray(est.noise, np.float64)[:, cols]).T

    def predict(
        self,
        params: Any,
        resp: np.ndarray,
        cols: np.ndarray | None = None,
        aux: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and variance of entries given the rows' responsibilities (NumPy,
        float64, data units).

        .. math::

            \\hat x_{ul} = \\sum_k p(k \\mid x_{u,C_u}) \\mu_{kl}, \\qquad
            \\mathrm{var}_{ul} = \\sum_k p(k \\mid x_{u,C_u}) (\\Sigma_{k,ll} + \\mu_{kl}^2)
                - \\hat x_{ul}^2

        Args:
            params: The parameters.
            resp: ``(m, K)`` responsibilities of the rows.
            cols: ``None``: every column (returns ``(m, d)`` arrays); or ``(m,)``: one column per
                row (returns ``(m,)`` arrays).
            aux: The rows' ``aux`` from :meth:`log_joint` (unused here: a component's
                prediction does not depend on the row).
        """
        mu = np.asarray(params.mu, np.float64)
        K, d = mu.shape
        var_kd = np.asarray(self.var_kd(params.cov, K, d), np.float64)
        # Work with the means centred per column: the mixture mean does not pick up the column
        # offset times the rounding of sum_k resp, and the variance avoids cancellation.
        centre = mu.mean(axis=0)
        dev = mu - centre
        if cols is None:
            shift = resp @ dev
            second = resp @ (dev * dev) - shift**2
            return centre + shift, np.maximum(second, 0.0) + resp @ var_kd
        shift = np.einsum("mk,km->m", resp, dev[:, cols])
        second = np.einsum("mk,km->m", resp, dev[:, cols] ** 2) - shift**2
        mix_var = np.einsum("mk,km->m", resp, var_kd[:, cols])
        return centre[cols] + shift, np.maximum(second, 0.0) + mix_var


def _expand(perm: np.ndarray, extra: int) -> np.ndarray:
    return perm.reshape(perm.shape + (1,) * extra) if extra > 0 else perm
