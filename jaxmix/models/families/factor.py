"""The factor family: a mixture of factor analysers, ``Sigma_k = Lambda_k D_k Lambda_k' + Psi_k``.

Row ``u`` in component ``k`` is ``x_u = mu_k + W_k z_u + c_u 1 + e_u`` with ``q`` latent factors
``z_u ~ N(0, I_q)`` and loadings ``W_k`` ``(d, q)``, optionally a per-row offset ``c_u ~ N(0,
tau_k^2)`` (a factor whose loading is fixed to 1 in every column: a user's personal level), and
independent noise ``e_u ~ N(0, Psi_k)``, ``Psi_k = diag(var_k)``. With ``Lambda_k = [1, W_k]``
``(d, p)`` and ``D_k = diag(tau_k^2, 1, ..., 1)``, the observed coordinates ``C`` of a row are
``N(mu_kC, Lambda_kC D_k Lambda_kC' + Psi_kC)``: the missing ones integrate out exactly, and so
do the factors. Its log density uses only ``p x p`` matrices (Woodbury's identity and the matrix
determinant lemma):

.. math::

    M = D^{-1} + \\sum_{l \\in C} \\frac{\\Lambda_l \\Lambda_l'}{\\psi_l},\\quad
    b = \\sum_{l \\in C} \\frac{\\Lambda_l (x_l - \\mu_l)}{\\psi_l},\\quad
    \\log N = -\\tfrac12 \\Big[\\sum_{l \\in C} \\Big(\\log 2\\pi\\psi_l
        + \\frac{(x_l - \\mu_l)^2}{\\psi_l}\\Big) - b' M^{-1} b + \\log|M| + \\log|D|\\Big]

and the factors' posterior given the row's observed entries and the component is
``N(M^{-1} b, M^{-1})``. Every sum is over the row's observed entries, so both layouts evaluate
it (:class:`~jaxmix.data.base.RowTables`: ``M`` and ``b`` are row sums of per-column tables).

The M-step is closed form per component and column: a weighted least-squares regression of
``x_ul`` (minus the offset) on ``[z_u, 1]`` with the factors' posterior moments, which gives
``W_kl`` and ``mu_kl`` together, then ``psi_kl`` from the expected squared residual, and
``tau_k^2`` from the offsets' second moments. With a prior the regression is a ridge one
(``Normal(0, loading_sd^2)`` on the loadings, ``Normal(m0_l, s0_l^2)`` on the means, given the old
``psi``) and the variances take the InverseGamma's conditional mode, as in the other families.

Small ranks are cheap: the row sums have ``1 + p + p (p + 1) / 2`` features per component. On
triples the features are the Gram matrix of ``[Lambda_l, x_l - mu_l] / sqrt(psi_l)``
(:meth:`FactorFamily.row_gram`): the triangle of ``Lambda_l Lambda_l' / psi_l`` is a per-column
table, and only the ``1 + p`` terms with ``x_l`` are formed per entry.
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
from numpyro.distributions import constraints

from jaxmix._validate import check_int
from jaxmix.data.base import ColWeights, GramTables, RowTables, in_chunk_loop
from jaxmix.models.families.base import (
    WEIGHT_EPS,
    Estimation,
    Family,
    floor_variance,
    inverse_gamma_log_density,
    noise_excess,
    update_variance,
    update_weights,
)

__all__ = ["FACTOR", "FactorCov", "FactorFamily", "FactorStats", "MaskedLowRankNormal"]

_LOG_2PI = math.log(2.0 * math.pi)


class FactorCov(NamedTuple):
    """Parameters of the factor family.

    Attributes:
        var: Noise variances ``psi_kl``, ``(K, d)``.
        loadings: Loadings ``W_k``, ``(K, d, q)``.
        offset: Variance ``tau_k^2`` of the per-row offset, ``(K, 1)``; ``(K, 0)`` without one.
    """

    var: Any
    loadings: Any
    offset: Any

    family = "factor"


class FactorStats(NamedTuple):
    """Expected sufficient statistics of the factor family (``p`` latent dimensions, the offset
    first; ``P = p (p + 1) / 2`` packed upper triangle).

    Attributes:
        n_k: ``sum_u r_uk``, ``(K,)``.
        count: ``sum_u r_uk [l in C_u]``, ``(K, d)``.
        x1: ``sum_u r_uk [l in C_u] x_ul``, ``(K, d)``.
        x2: ``sum_u r_uk [l in C_u] x_ul^2``, ``(K, d)``.
        z1: ``sum_u r_uk [l in C_u] E[z_u]``, ``(K, d, p)``.
        xz: ``sum_u r_uk [l in C_u] x_ul E[z_u]``, ``(K, d, p)``.
        z2: ``sum_u r_uk [l in C_u] E[z_u z_u']`` (packed), ``(K, d, P)``.
        offset2: ``sum_u r_uk E[c_u^2]`` (the offset's second moment), ``(K, o)``.
        n_rows: Number of rows ``n``.
    """

    n_k: Array
    count: Array
    x1: Array
    x2: Array
    z1: Array
    xz: Array
    z2: Array
    offset2: Array
    n_rows: Array


def _unpack(packed: Array, p: int) -> Array:
    """A symmetric ``(..., p, p)`` matrix from its packed upper triangle ``(..., P)``."""
    iu0, iu1 = np.triu_indices(p)
    full = jnp.zeros((*packed.shape[:-1], p, p), packed.dtype).at[..., iu0, iu1].set(packed)
    return full + jnp.swapaxes(full, -1, -2) - full * jnp.eye(p, dtype=packed.dtype)


def _pack(full: Array, p: int) -> Array:
    iu0, iu1 = np.triu_indices(p)
    return full[..., iu0, iu1]


def _cho_solve(L: Array, b: Array) -> Array:
    """``(L L')^{-1} b`` for batched lower-triangular ``L`` ``(..., p, p)`` and ``b``
    ``(..., p)`` or ``(..., p, k)``."""
    vec = b.ndim == L.ndim - 1
    rhs = b[..., None] if vec else b
    y = jax.scipy.linalg.solve_triangular(L, rhs, lower=True)
    x = jax.scipy.linalg.solve_triangular(jnp.swapaxes(L, -1, -2), y, lower=False)
    return x[..., 0] if vec else x


#: Up to this many latent dimensions the ``p x p`` solves of a layout's chunk loop, and of a
#: batch of at least :data:`UNROLL_MIN_BATCH` matrices, are written out entry by entry
#: (:func:`_small_posterior_solve`); above, and for smaller batches outside such a loop,
#: jaxlib's batched LAPACK kernels.
UNROLL_MAX = 10
#: From this many matrices in one batch (rows times components in the E-step, columns times
#: components in the M-step) the written-out solves are used outside a chunk loop too: at
#: n = d = 1200, K = 4, rank 8 they take 2.6 ms of the E-step against 5.4 ms, and 0.6 ms of the
#: M-step against 3.5 ms (LU), but compile about 3 s longer each, which a small batch does not
#: repay.
UNROLL_MIN_BATCH = 4096


def _unrolled(M: Array) -> bool:
    """Whether the solves of the batch ``M`` ``(..., p, p)`` are written out (trace time)."""
    p = M.shape[-1]
    return p <= UNROLL_MAX and (in_chunk_loop() or math.prod(M.shape[:-2]) >= UNROLL_MIN_BATCH)


def _spd_solve(A: Array, b: Array) -> Array:
    """``A^{-1} b`` for a batch of symmetric positive definite ``A`` ``(..., p, p)`` and ``b``
    ``(..., p)``: written out (Cholesky) for a large batch of small matrices, else LU by
    LAPACK."""
    if _unrolled(A):
        return _small_posterior_solve(A, b)[0]
    return jnp.linalg.solve(A, b[..., None])[..., 0]


def _small_posterior_solve(M: Array, b: Array) -> tuple[Array, Array, Array]:
    """:func:`_posterior_solve` written out entry by entry, for small ``p``.

    The Cholesky factor ``L``, its inverse ``W`` (forward substitution), ``S = W' W`` and
    ``m = S b`` as scalar recurrences over the matrix entries, each entry an array over the batch
    (the batch axes last, so each operation is one loop over contiguous memory). A matrix that is
    not positive definite gives NaN, as LAPACK's factorisation does. The program grows as
    ``p^3`` (about 3 s of compilation at ``p = 9``, 11 s at ``p = 12``), hence
    :data:`UNROLL_MAX`.
    """
    p = M.shape[-1]
    Mt = jnp.moveaxis(M, (-2, -1), (0, 1))  # (p, p, ...)
    bt = jnp.moveaxis(b, -1, 0)  # (p, ...)
    L = [[None] * p for _ in range(p)]
    inv_diag = [None] * p
    logdet = jnp.zeros(M.shape[:-2], M.dtype)
    for j in range(p):
        pivot = Mt[j, j]
        for k in range(j):
            pivot = pivot - L[j][k] * L[j][k]
        inv_diag[j] = jax.lax.rsqrt(pivot)
        logdet = logdet + jnp.log(pivot)
        for i in range(j + 1, p):
            t = Mt[i, j]
            for k in range(j):
                t = t - L[i][k] * L[j][k]
            L[i][j] = t * inv_diag[j]
    W = [[None] * p for _ in range(p)]  # L^{-1}, lower triangular
    for i in range(p):
        W[i][i] = inv_diag[i]
        for j in range(i):
            t = L[i][j] * W[j][j]
            for k in range(j + 1, i):
                t = t + L[i][k] * W[k][j]
            W[i][j] = -t * inv_diag[i]
    S = [[None] * p for _ in range(p)]  # W' W
    for a in range(p):
        for c in range(a, p):
            t = W[c][a] * W[c][c]
            for i in range(c + 1, p):
                t = t + W[i][a] * W[i][c]
            S[a][c] = S[c][a] = t
    m = []
    for a in range(p):
        t = S[a][0] * bt[0]
        for c in range(1, p):
            t = t + S[a][c] * bt[c]
        m.append(t)
    S_full = jnp.stack([jnp.stack(row, axis=-1) for row in S], axis=-2)
    return jnp.stack(m, axis=-1), S_full, logdet


def _posterior_solve(M: Array, b: Array) -> tuple[Array, Array, Array]:
    """For a batch of symmetric positive definite ``M`` ``(..., p, p)`` and ``b`` ``(..., p)``:
    ``(M^{-1} b, M^{-1}, log|M|)`` (Cholesky).

    Inside a layout's chunk loop (:func:`~jaxmix.data.base.in_chunk_loop`) and for
    ``p <= UNROLL_MAX``, written out entry by entry (:func:`_small_posterior_solve`): there the
    batched LAPACK kernels are called once per chunk, thousands of times per pass, and those
    calls made the factor family's pass on triples 2.4 times slower (Netflix-Prize size, K = 4,
    rank 8: 85 s against 34 s per iteration). Elsewhere (one call per pass over all rows) the
    same from :data:`UNROLL_MIN_BATCH` matrices on; a smaller batch keeps the kernels, whose
    program compiles in a fraction of the time.
    """
    p = M.shape[-1]
    if _unrolled(M):
        return _small_posterior_solve(M, b)
    L = jnp.linalg.cholesky(M)
    # One triangular solve, W = L^{-1}; then S = W' W and m = S b as broadcast sums: on the CPU
    # each solve and each batched p x p product is a call per matrix (the sums are one loop),
    # which made the four solves of S and m cost three times the Cholesky factorisation.
    W = jax.scipy.linalg.solve_triangular(
        L, jnp.broadcast_to(jnp.eye(p, dtype=M.dtype), M.shape), lower=True
    )
    S = jnp.sum(W[..., :, :, None] * W[..., :, None, :], axis=-3)
    m = jnp.sum(S * b[..., None, :], axis=-1)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    return m, S, logdet


class FactorFamily(Family):
    """A mixture of factor analysers with ``rank`` factors and optionally a per-row offset
    (module :mod:`jaxmix.models.families.factor`)."""

    name = "factor"
    cov_type = FactorCov
    summary = "a mixture of factor analysers: Sigma_k = W_k W_k' + tau_k^2 1 1' + diag(var_k)"
    options = ("rank", "row_offset")
    batched_solves = True

    def __init__(self, rank: int = 1, row_offset: bool = True) -> None:
        self.rank = check_int(rank, "rank", 0)
        if not isinstance(row_offset, (bool, np.bool_)):
            raise TypeError(f"row_offset must be True or False; got {row_offset!r}")
        self.row_offset = bool(row_offset)

    def __repr__(self) -> str:
        return f"<covariance family 'factor' rank={self.rank} row_offset={self.row_offset}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FactorFamily)
            and other.rank == self.rank
            and other.row_offset == self.row_offset
        )

    def __hash__(self) -> int:
        return hash(("factor", self.rank, self.row_offset))

    # ------------------------------------------------------------------ configuration

    def configure(self, rank: Any = None, row_offset: Any = None) -> FactorFamily:
        """This family with another ``rank`` or ``row_offset`` (``None`` keeps the current)."""
        return FactorFamily(
            self.rank if rank is None else rank,
            self.row_offset if row_offset is None else row_offset,
        )

    def for_cov(self, cov: Any) -> FactorFamily:
        """The family of given parameters: the rank and the offset are read off the shapes."""
        return FactorFamily(int(np.shape(cov.loadings)[-1]), int(np.shape(cov.offset)[-1]) == 1)

    @property
    def o(self) -> int:
        """1 with a per-row offset, else 0."""
        return int(self.row_offset)

    @property
    def p(self) -> int:
        """Latent dimensions: the offset and the ``rank`` factors."""
        return self.o + self.rank

    @property
    def n_packed(self) -> int:
        """``p (p + 1) / 2``."""
        return self.p * (self.p + 1) // 2

    # ------------------------------------------------------------------ shapes and checks

    def var_shape(self, K: int, d: int) -> tuple[int, ...]:
        return (K, d)

    def n_parameters(self, K: int, d: int) -> int:
        """Means, noise variances, loadings (less the ``q (q - 1) / 2`` rotations of each
        component's factors), offsets and ``K - 1`` weights."""
        q = self.rank
        return K * d + K * d + K * (d * q - q * (q - 1) // 2) + K * self.o + (K - 1)

    def check_cov(self, cov: Any, K: int, d: int, batch: int = 0, label: str = "fitted") -> Any:
        var = self.check_var(cov, K, d, batch, label)
        loadings = np.asarray(cov.loadings, np.float64)
        offset = np.asarray(cov.offset, np.float64)
        lead = var.shape[:batch]
        if loadings.shape != (*lead, K, d, self.rank):
            raise ValueError(
                f"the {label} loadings have shape {loadings.shape}; the factor family of rank "
                f"{self.rank} needs {(*lead, K, d, self.rank)}"
            )
        if offset.shape != (*lead, K, self.o):
            raise ValueError(
                f"the {label} offset variances have shape {offset.shape}; expected "
                f"{(*lead, K, self.o)}"
            )
        if not np.all(np.isfinite(loadings)):
            raise ValueError(f"{label} loadings must be finite")
        if not np.all(np.isfinite(offset) & (offset > 0)):
            raise ValueError(f"{label} offset variances must be finite and positive")
        return FactorCov(var, loadings, offset)

    def cov_from_var(self, var: Any, K: int, d: int, *, batch: int = 0) -> Any:
        """From user-given variances: one per component ``(K,)`` or per component and column
        ``(K, d)``, split as the named initialisations split them
        (:meth:`from_component_variances`)."""
        var = np.asarray(var, np.float64)
        if var.shape[batch:] == (K,):
            var = np.repeat(var[..., None], d, axis=-1)
        if var.shape[batch:] != (K, d):
            raise ValueError(
                f"init var must have shape ({K},) or ({K}, {d}) per restart for "
                f"covariance='factor'; got {var.shape}"
            )
        return self._split(var, seed=0)

    def from_component_variances(
        self, var: np.ndarray, weights: np.ndarray, d: int, seed: int = 0
    ) -> Any:
        var = np.asarray(var, np.float64)
        return self._split(np.repeat(var[..., None], d, axis=-1), seed=seed)

    def _split(self, var: np.ndarray, seed: int) -> FactorCov:
        """A start from per-entry variances ``(..., K, d)``: half to the noise, a quarter to the
        offset (when there is one), the rest to small random loadings (EM cannot leave
        ``W = 0``, a fixed point)."""
        rng = np.random.default_rng(seed)
        lead = var.shape[:-1]
        share_offset = 0.25 if self.row_offset else 0.0
        share_factors = 0.5 - share_offset if self.rank else 0.0
        psi = var * (1.0 - share_offset - share_factors)
        q = max(self.rank, 1)
        scale = np.sqrt(var * share_factors / q)[..., None]
        loadings = scale * rng.standard_normal((*var.shape, self.rank))
        offset = np.broadcast_to(
            (share_offset * var.mean(axis=-1))[..., None], (*lead, self.o)
        ).copy()
        return FactorCov(psi, loadings, np.maximum(offset, 1e-12))

    # ------------------------------------------------------------------ units and labels

    def rescale(self, cov: Any, factor: Any) -> Any:
        return FactorCov(
            cov.var * factor * factor, cov.loadings * factor, cov.offset * factor * factor
        )

    def split_direction(self, cov: Any, k: int) -> np.ndarray | None:
        # The component's longest loading: one factor's standard deviation along the direction
        # in which its rows spread most beyond the noise (a component spanning two groups of rows
        # spreads along the line between them).
        loadings = np.asarray(cov.loadings, np.float64)[k]
        if loadings.shape[-1] == 0:
            return None
        column = loadings[:, int(np.argmax((loadings * loadings).sum(axis=0)))]
        return column if np.any(column != 0) else None

    def permute(self, cov: Any, perm: Any) -> Any:
        perm = np.asarray(perm)
        lead = perm.ndim - 1

        def take(a: Any, extra: int) -> np.ndarray:
            a = np.asarray(a)
            return np.take_along_axis(a, perm.reshape(perm.shape + (1,) * extra), lead)

        return FactorCov(take(cov.var, 1), take(cov.loadings, 2), take(cov.offset, 1))

    def var_kd(self, cov: Any, K: int, d: int) -> Any:
        """The marginal variance of every entry: ``psi + |W_kl|^2 + tau_k^2``."""
        var = np.asarray(cov.var)
        w = np.asarray(cov.loadings)
        return var + np.sum(w * w, axis=-1) + np.sum(np.asarray(cov.offset), axis=-1)[..., None]

    def covariance_matrix(self, cov: Any, K: int, d: int) -> np.ndarray:
        """``W_k W_k' + tau_k^2 1 1' + diag(psi_k)``, ``(K, d, d)``."""
        w = np.asarray(cov.loadings, np.float64)
        full = np.einsum("...kdq,...keq->...kde", w, w)
        full = full + np.sum(np.asarray(cov.offset, np.float64), axis=-1)[..., None, None]
        return full + np.asarray(cov.var, np.float64)[..., :, None] * np.eye(d)

    def _lambda(self, cov: Any) -> Array:
        """``Lambda = [1, W]``, ``(K, d, p)``."""
        w = cov.loadings
        if not self.row_offset:
            return w
        xp = np if isinstance(w, np.ndarray) else jnp  # host predictions stay in NumPy float64
        return xp.concatenate([xp.ones((*w.shape[:-1], 1), w.dtype), w], axis=-1)

    def _log_latent_var(self, cov: Any, K: int, dtype: Any) -> Array:
        """``log diag(D_k)``, ``(K, p)``."""
        return jnp.concatenate([jnp.log(cov.offset), jnp.zeros((K, self.rank), dtype)], axis=-1)

    # ------------------------------------------------------------------ the E-step

    def row_tables(self, params: Any) -> RowTables:
        mu, cov = params.mu, params.cov
        K, d = mu.shape
        p = self.p
        prec = 1.0 / cov.var  # (K, d)
        lam = self._lambda(cov)  # (K, d, p)
        iu0, iu1 = np.triu_indices(p)
        zeros = jnp.zeros((K, d, 1), mu.dtype)
        a2 = prec[..., None]
        a1 = jnp.concatenate([zeros, lam * prec[..., None]], axis=-1)
        outer = lam[..., iu0] * lam[..., iu1] * prec[..., None]
        a0 = jnp.concatenate(
            [jnp.log(2.0 * math.pi * cov.var)[..., None], jnp.zeros((K, d, p), mu.dtype), outer],
            axis=-1,
        )
        swap = (1, 0, 2)
        return RowTables(
            centre=mu.T,
            a0=jnp.transpose(a0, swap),
            a1=jnp.transpose(a1, swap),
            a2=jnp.transpose(a2, swap),
        )

    def row_gram(self, params: Any) -> GramTables:
        """:meth:`row_tables` as a Gram matrix: ``a = [Lambda_l, x_l - mu_l] / sqrt(psi_l)``, so
        that ``sum a a'`` holds ``M - D^{-1}``, ``b`` and the quadratic term, and ``c = log 2 pi
        psi_l``."""
        mu, cov = params.mu, params.cov
        inv_sd = jax.lax.rsqrt(cov.var)  # (K, d)
        vectors = self._lambda(cov) * inv_sd[..., None]  # (K, d, p)
        return GramTables(
            centre=mu.T,
            scale=inv_sd.T,
            vectors=jnp.transpose(vectors, (1, 0, 2)),
            const=jnp.log(2.0 * math.pi * cov.var).T,
        )

    def log_joint(self, params: Any, sums: Array, rows: Any) -> tuple[Array, Any]:
        p = self.p
        K = params.weights.shape[-1]
        log_w = jnp.log(params.weights + WEIGHT_EPS)
        quad = sums[..., 0]
        if p == 0:
            r = sums.shape[:-1]
            return log_w - 0.5 * quad, (
                jnp.zeros((*r, 0), sums.dtype),
                jnp.zeros((*r, 0, 0), sums.dtype),
            )
        b = sums[..., 1 : 1 + p]
        log_dvar = self._log_latent_var(params.cov, K, sums.dtype)  # (K, p)
        M = _unpack(sums[..., 1 + p :], p) + jnp.exp(-log_dvar)[..., None] * jnp.eye(
            p, dtype=sums.dtype
        )
        m, S, logdet = _posterior_solve(M, b)
        log_n = -0.5 * (quad - jnp.sum(b * m, axis=-1) + logdet + jnp.sum(log_dvar, axis=-1))
        return log_w + log_n, (m, S)

    # ------------------------------------------------------------------ the M-step

    def weight_sizes(self, params: Any) -> tuple[int, int, int]:
        K = params.weights.shape[-1]
        return (K * (1 + self.p + self.n_packed), K * (1 + self.p), K)

    def stat_weights(self, resp: Array, aux: Any) -> ColWeights:
        m, S = aux
        r, K = resp.shape
        p = self.p
        ezz = _pack(S + m[..., :, None] * m[..., None, :], p)  # (r, K, P)
        w = jnp.concatenate(
            [resp, (resp[..., None] * m).reshape(r, -1), (resp[..., None] * ezz).reshape(r, -1)],
            axis=1,
        )
        return ColWeights(w, (K * (1 + p + self.n_packed), K * (1 + p), K))

    def row_totals(self, resp: Array, rows: Any) -> Array:
        return jnp.sum(resp, axis=0)

    def aux_totals(self, resp: Array, aux: Any) -> Array:
        """``sum_u r_uk E[c_u^2]``, the offset's second moment, ``(K, o)``."""
        m, S = aux
        if not self.row_offset:
            return jnp.zeros((resp.shape[1], 0), resp.dtype)
        return jnp.sum(resp * (S[..., 0, 0] + m[..., 0] ** 2), axis=0)[:, None]

    def suff_stats(self, cols: tuple, totals: Any, n_rows: Array, aux_totals: Any = None) -> Any:
        c0, c1, c2 = cols
        d = c0.shape[0]
        n_k = totals
        K = n_k.shape[0]
        p, P = self.p, self.n_packed

        def split(c: Array, start: int, width: int) -> Array:
            block = c[:, start * K : (start + width) * K].reshape(d, K, width)
            return jnp.transpose(block, (1, 0, 2))

        offset2 = jnp.zeros((K, 0), n_k.dtype) if aux_totals is None else aux_totals
        return FactorStats(
            n_k=n_k,
            count=c0[:, :K].T,
            x1=c1[:, :K].T,
            x2=c2.T,
            z1=split(c0, 1, p),
            xz=split(c1, 1, p),
            z2=split(c0, 1 + p, P),
            offset2=offset2,
            n_rows=n_rows,
        )

    def _regression(self, stats: Any) -> tuple[Array, Array, Array]:
        """The per-column regression of ``y = x - c`` (the offset removed) on ``[z_free, 1]``:
        ``A = sum r E[a a']`` ``(K, d, q + 1, q + 1)``, ``B = sum r y E[a]`` ``(K, d, q + 1)``
        and ``sum r E[y^2]`` ``(K, d)``, ``a = [z_free, 1]``."""
        o, p = self.o, self.p
        N = stats.count  # (K, d)
        Z2 = _unpack(stats.z2, p) if p else jnp.zeros((*N.shape, 0, 0), N.dtype)
        zf1 = stats.z1[..., o:]
        top = jnp.concatenate([Z2[..., o:, o:], zf1[..., None]], axis=-1)
        bottom = jnp.concatenate([zf1[..., None, :], N[..., None, None]], axis=-1)
        A = jnp.concatenate([top, bottom], axis=-2)
        B = jnp.concatenate([stats.xz[..., o:], stats.x1[..., None]], axis=-1)
        ey2 = stats.x2
        if o:
            B = B - jnp.concatenate([Z2[..., 0, o:], stats.z1[..., :1]], axis=-1)
            ey2 = stats.x2 - 2.0 * stats.xz[..., 0] + Z2[..., 0, 0]
        return A, B, ey2

    def _ridge(self, prior: Any, shape: tuple, dtype: Any, xp: Any = jnp) -> tuple[Array, Array]:
        """The prior's precision ``(K, d, q + 1)`` of ``[loadings, mean]`` and its precision
        times the prior mean: ``1 / s_w^2`` on every loading, ``1 / s0_l^2`` on the mean."""
        q = self.rank
        s_w = xp.asarray(prior.loading_sd, dtype)
        m0 = xp.asarray(prior.mean, dtype)
        s0 = xp.asarray(prior.mean_sd, dtype)
        prec = xp.concatenate(
            [
                xp.broadcast_to(1.0 / (s_w * s_w), (*shape, q)),
                xp.broadcast_to((1.0 / (s0 * s0))[None, :, None], (*shape, 1)),
            ],
            axis=-1,
        )
        target = xp.concatenate(
            [
                xp.zeros((*shape, q), dtype),
                xp.broadcast_to((m0 / (s0 * s0))[None, :, None], (*shape, 1)),
            ],
            axis=-1,
        )
        return prec, target

    def m_step(self, stats: Any, params: Any, min_var: Any, prior: Any = None) -> Any:
        o, q = self.o, self.rank
        cov = params.cov
        dtype = stats.count.dtype
        N = stats.count  # (K, d)
        A, B, ey2 = self._regression(stats)  # A lam = B
        psi_old = cov.var
        eye = jnp.eye(q + 1, dtype=dtype)
        if prior is None:
            # A tiny ridge keeps the solve finite; coefficients move only where the column has
            # enough expected entries to determine them (as the spherical mean's rule).
            ridge = 1e-9 * (jnp.trace(A, axis1=-2, axis2=-1)[..., None, None] + 1.0)
            lam = _spd_solve(A + ridge * eye, B)
            # A column no row of the component has observed keeps its mean; its loadings go to
            # 0 (nothing determines them; the likelihood does not change). So does one whose
            # system rounding made indefinite (a non-finite solve).
            old = jnp.concatenate(
                [jnp.where((N > 0)[..., None], cov.loadings, 0.0), params.mu[..., None]], axis=-1
            )
            solved = (N >= q + 1.0) & jnp.all(jnp.isfinite(lam), axis=-1)
            lam = jnp.where(solved[..., None], lam, old)
        else:
            # Ridge of the prior, scaled by the old noise variance (the regression's weights are
            # 1 / psi).
            prec, target = self._ridge(prior, N.shape, dtype)
            A_ = A + psi_old[..., None, None] * prec[..., None, :] * eye
            B_ = B + psi_old[..., None] * target
            lam = _spd_solve(A_, B_)
        resid = ey2 - 2.0 * jnp.sum(lam * B, axis=-1) + jnp.einsum("kli,klij,klj->kl", lam, A, lam)
        var = update_variance(resid, N, psi_old, min_var, prior)
        offset = cov.offset
        if o:
            n_k = stats.n_k[:, None]
            if prior is None:
                offset = jnp.where(n_k > 0, stats.offset2 / jnp.where(n_k > 0, n_k, 1.0), offset)
            else:
                a = jnp.asarray(prior.var_shape, dtype)
                b = jnp.asarray(prior.var_scale, dtype)
                offset = (stats.offset2 + 2.0 * b) / (n_k + 2.0 * a + 2.0)
            offset = floor_variance(offset, 0.0)
        weights = update_weights(stats.n_k, stats.n_rows, prior)
        return params._replace(
            mu=lam[..., q], cov=FactorCov(var, lam[..., :q], offset), weights=weights
        )

    # ------------------------------------------------------------------ the prior

    def log_prior_cov(self, cov: Any, prior: Any) -> Array:
        """InverseGamma on the noise and offset variances, ``Normal(0, loading_sd^2)`` on the
        loadings."""
        w = cov.loadings
        s = jnp.asarray(prior.loading_sd, w.dtype)
        z = w / s
        log_w = jnp.sum(-0.5 * z * z - jnp.log(s) - 0.5 * _LOG_2PI)
        return (
            inverse_gamma_log_density(cov.var, prior)
            + inverse_gamma_log_density(cov.offset, prior)
            + log_w
        )

    def log_jacobian(self, K: int, d: int, scale: float) -> float:
        n_var = K * d + K * self.o
        return -2.0 * n_var * math.log(scale) - float(K * d * self.rank) * math.log(scale)

    # ------------------------------------------------------------------ NumPyro

    def sample_cov(self, prior: Any, K: int, d: int, dtype: Any) -> Any:
        q, o = self.rank, self.o
        if prior is None:
            var = numpyro.sample("var", dist.ImproperUniform(constraints.positive, (), (K, d)))
            loadings = numpyro.sample(
                "loadings", dist.ImproperUniform(constraints.real, (), (K, d, q))
            )
            offset = None
            if o:
                offset = numpyro.sample(
                    "offset", dist.ImproperUniform(constraints.positive, (), (K, o))
                )
        else:
            a = jnp.asarray(prior.var_shape, dtype)
            b = jnp.asarray(prior.var_scale, dtype)
            s = jnp.asarray(prior.loading_sd, dtype)
            var = numpyro.sample("var", dist.InverseGamma(a, b).expand((K, d)).to_event(2))
            loadings = numpyro.sample("loadings", dist.Normal(0.0, s).expand((K, d, q)).to_event(3))
            offset = None
            if o:
                offset = numpyro.sample(
                    "offset", dist.InverseGamma(a, b).expand((K, o)).to_event(2)
                )
        if offset is None:  # no row offset: no site
            offset = jnp.zeros((K, 0), dtype)
        return FactorCov(var, loadings, offset)

    def row_distribution(self, loc: Array, cov: Any, z: Array, mask: Array) -> Any:
        return MaskedLowRankNormal(
            loc,
            self._lambda(cov)[z],
            cov.var[z],
            jnp.exp(self._log_latent_var(cov, cov.var.shape[0], cov.var.dtype))[z],
            mask,
        )

    def component_sd(self, cov: Any, z: Array) -> Array:
        raise TypeError(
            "the factor family's rows are not independent per entry: use row_distribution"
        )

    def site_constraints(self) -> dict[str, Any]:
        sites = {"var": constraints.positive, "loadings": constraints.real}
        if self.row_offset:
            sites["offset"] = constraints.positive
        return sites

    def site_values(self, cov: Any) -> dict[str, Any]:
        sites = {"var": cov.var, "loadings": cov.loadings}
        if self.row_offset:
            sites["offset"] = cov.offset
        return sites

    def from_site_values(self, values: dict[str, Any]) -> Any:
        var = values["var"]
        offset = values["offset"] if self.row_offset else jnp.zeros((*var.shape[:-1], 0), var.dtype)
        return FactorCov(var, values["loadings"], offset)

    # ------------------------------------------------------------------ prediction

    row_dependent = True

    def _row_posteriors(self, cov: Any, n: int, K: int, aux: Any) -> tuple:
        """The rows' factor posteriors, or the factors' prior where ``aux`` is ``None``."""
        p = self.p
        if aux is not None:
            return tuple(np.asarray(a, np.float64) for a in aux)
        latent = np.exp(np.asarray(self._log_latent_var(cov, K, np.float64)))  # (K, p)
        S = latent[:, :, None] * np.eye(p)
        return np.zeros((n, K, p)), np.broadcast_to(S, (n, K, p, p))

    def entry_moments(
        self, params: Any, cols: np.ndarray, aux: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``mu_kl + Lambda_kl' E[z | x_C, k]`` and ``psi_kl + Lambda_kl' Cov[z | x_C, k]
        Lambda_kl``, ``(m, K)``: each component's prediction given the row's observed entries."""
        mu = np.asarray(params.mu, np.float64)
        K = mu.shape[0]
        cov = jax.tree.map(lambda a: np.asarray(a, np.float64), params.cov)
        lam_c = np.asarray(self._lambda(cov), np.float64)[:, cols]  # (K, m, p)
        m, S = self._row_posteriors(cov, cols.shape[0], K, aux)
        loc = mu[:, cols].T + np.einsum("mkp,kmp->mk", m, lam_c)
        var = cov.var[:, cols].T + np.einsum("kmp,mkpq,kmq->mk", lam_c, S, lam_c)
        return loc, var

    def estimation_cov(self, stats: Any, params: Any, prior: Any = None) -> Estimation:
        """How uncertain the fitted per-column estimates are: ``coef`` is the posterior
        covariance of each column's coefficients ``[Lambda_kl (free), mu_kl]`` given the E-step,
        ``(K, d, q + 1, q + 1)``: ``psi_kl (A_kl + psi_kl P)^{-1}`` with ``A_kl = sum_u r_uk
        [l in C_u] E[a a']``, ``a = [z_free, 1]``, and ``P`` the prior's precision (the M-step's
        ridge regression); without a prior ``P`` is the identity (one pseudo-entry in
        standardised units, so that a column with fewer entries than coefficients stays finite).
        ``noise`` is the noise variances' posterior excess (:func:`noise_excess`, ``q + 1``
        coefficients per column)."""
        q = self.rank
        A = np.asarray(self._regression(stats)[0], np.float64)
        psi = np.asarray(params.cov.var, np.float64)
        shape = psi.shape
        if prior is None:
            prec = np.ones((*shape, q + 1))
        else:
            prec = np.asarray(self._ridge(prior, shape, np.float64, np)[0], np.float64)
        eye = np.eye(q + 1)
        coef = psi[..., None, None] * np.linalg.inv(
            A + psi[..., None, None] * prec[..., None, :] * eye
        )
        noise = noise_excess(psi, np.asarray(stats.count, np.float64), q + 1, prior)
        return Estimation(coef, noise)

    def estimation_variance(self, est: Any, cols: np.ndarray, aux: Any = None) -> np.ndarray:
        """``E[a]' C_kl E[a] + tr(C_kl Cov[a])`` of every entry and component, ``(m, K)``, with
        ``a = [z_free, 1]`` the row's factors given its observed entries (the factors' prior
        where ``aux`` is ``None``)."""
        o, q = self.o, self.rank
        C = np.asarray(est.coef, np.float64)[:, cols]  # (K, m, q + 1, q + 1)
        K, m = C.shape[:2]
        if aux is None:
            ez = np.zeros((m, K, q))
            sz = np.zeros((m, K, q, q))
            if q:  # the free factors' prior is the identity
                sz = np.broadcast_to(np.eye(q), (m, K, q, q))
        else:
            ez = np.asarray(aux[0], np.float64)[..., o:]
            sz = np.asarray(aux[1], np.float64)[..., o:, o:]
        a = np.concatenate([ez, np.ones((m, K, 1))], axis=-1)
        extra = np.einsum("mki,kmij,mkj->mk", a, C, a)
        if q:
            extra = extra + np.einsum("kmij,mkji->mk", C[..., :q, :q], sz)
        return extra + np.asarray(est.noise, np.float64)[:, cols].T

    def predict(
        self,
        params: Any,
        resp: np.ndarray,
        cols: np.ndarray | None = None,
        aux: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and variance given the rows' observed entries: per component
        ``mu_kl + Lambda_kl' E[z | x_C, k]`` and ``psi_kl + Lambda_kl' Cov[z | x_C, k]
        Lambda_kl``, mixed by the responsibilities (the law of total variance).

        ``aux`` is the rows' factor posteriors ``(m (n, K, p), S (n, K, p, p))`` from
        :meth:`log_joint`; without it (no row information) the factors' prior is used.
        """
        mu = np.asarray(params.mu, np.float64)
        K, d = mu.shape
        cov = jax.tree.map(lambda a: np.asarray(a, np.float64), params.cov)
        lam = np.asarray(self._lambda(cov), np.float64)  # (K, d, p)
        n = resp.shape[0]
        m, S = self._row_posteriors(cov, n, K, aux)
        centre = mu.mean(axis=0)
        if cols is None:
            mean = np.zeros((n, d))
            second = np.zeros((n, d))
            for k in range(K):
                dev = (mu[k] - centre)[None, :] + m[:, k] @ lam[k].T  # (n, d)
                spread = np.einsum("dp,npq,dq->nd", lam[k], S[:, k], lam[k])
                r = resp[:, k : k + 1]
                mean += r * dev
                second += r * (dev * dev + cov.var[k][None, :] + spread)
            return centre + mean, np.maximum(second - mean * mean, 0.0)
        lam_c = lam[:, cols]  # (K, m, p)
        dev = (mu[:, cols] - centre[cols]).T + np.einsum("mkp,kmp->mk", m, lam_c)  # (m, K)
        spread = np.einsum("kmp,mkpq,kmq->mk", lam_c, S, lam_c)
        mean = np.sum(resp * dev, axis=1)
        second = np.sum(resp * (dev * dev + cov.var[:, cols].T + spread), axis=1)
        return centre[cols] + mean, np.maximum(second - mean * mean, 0.0)


class MaskedLowRankNormal(dist.Distribution):
    """``N(loc, F D F' + diag(psi))`` over the coordinates where ``mask`` is True, the others
    integrated out: the factor family's row likelihood in NumPyro.

    Event shape ``(d,)``; ``loc`` ``(..., d)``, ``factor`` ``(..., d, p)``, ``psi`` ``(..., d)``,
    ``latent_var`` (``diag(D)``) ``(..., p)``, ``mask`` ``(..., d)`` boolean. The log density is
    Woodbury's form of the module docstring (only ``p x p`` matrices).
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "psi": constraints.independent(constraints.positive, 1),
    }
    support = constraints.real_vector

    def __init__(self, loc, factor, psi, latent_var, mask, *, validate_args=None):
        batch = jax.lax.broadcast_shapes(
            jnp.shape(loc)[:-1],
            jnp.shape(factor)[:-2],
            jnp.shape(psi)[:-1],
            jnp.shape(latent_var)[:-1],
            jnp.shape(mask)[:-1],
        )
        d = jnp.shape(loc)[-1]
        self.loc, self.factor, self.psi, self.latent_var, self.mask = (
            loc,
            factor,
            psi,
            latent_var,
            mask,
        )
        super().__init__(batch_shape=batch, event_shape=(d,), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        raise NotImplementedError("MaskedLowRankNormal only scores observations")

    def log_prob(self, value):
        obs = jnp.asarray(self.mask, value.dtype)
        u = (value - self.loc) * obs
        prec = obs / self.psi  # 0 at the missing coordinates
        p = self.factor.shape[-1]
        quad = jnp.sum(u * u * prec, axis=-1)
        log_psi = jnp.sum(obs * jnp.log(2.0 * math.pi * self.psi), axis=-1)
        if p == 0:
            return -0.5 * (quad + log_psi)
        b = jnp.einsum("...dp,...d->...p", self.factor, u * prec)
        M = jnp.einsum("...dp,...d,...dq->...pq", self.factor, prec, self.factor)
        M = M + (1.0 / self.latent_var)[..., None] * jnp.eye(p, dtype=M.dtype)
        L = jnp.linalg.cholesky(M)
        m = _cho_solve(L, b)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
        logdet = logdet + jnp.sum(jnp.log(self.latent_var), axis=-1)
        return -0.5 * (quad - jnp.sum(b * m, axis=-1) + logdet + log_psi)


#: The factor family of rank 1 with a per-row offset (``get_family("factor", rank=...)`` gives
#: others).
FACTOR = FactorFamily(rank=1, row_offset=True)
