"""scikit-learn estimators over jaxmix's EM: a mixture and an imputer that accept ``NaN``.

:class:`GaussianMixture` is :func:`jaxmix.fit_em` behind scikit-learn's estimator contract
(``fit`` returns ``self``, parameters are set in ``__init__`` only, fitted attributes end in
``_``), with the missing entries of ``X`` marked by ``NaN`` at fit and prediction time.
:class:`MixtureImputer` fills the missing entries with their conditional mean under the fitted
mixture (:func:`jaxmix.complete`) and works in a :class:`~sklearn.pipeline.Pipeline` and in
:class:`~sklearn.model_selection.GridSearchCV` (its ``score`` is the mean log-likelihood of the
rows' observed entries).

This module needs the optional extra: ``pip install "jaxmix[sklearn]"`` (scikit-learn >= 1.6);
``import jaxmix`` does not import scikit-learn.

The fit runs in JAX (float32 unless the user enabled float64). The per-row quantities
(``predict_proba``, ``score_samples`` and what derives from them) are evaluated in NumPy float64
from the fitted parameters, one missing-value pattern at a time: they do not depend on which
other rows are passed with a row.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

try:
    from sklearn.base import (
        BaseEstimator,
        DensityMixin,
        OneToOneFeatureMixin,
        TransformerMixin,
    )
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - exercised by a test that hides scikit-learn
    raise ImportError(
        'jaxmix.sklearn needs scikit-learn >= 1.6: pip install "jaxmix[sklearn]"'
    ) from err

from jaxmix._validate import (
    check_choice,
    check_nonneg_float,
    check_nonneg_int,
    check_positive_int,
)
from jaxmix.inference.em import fit_em
from jaxmix.models.families import FAMILIES, family_of
from jaxmix.models.prior import Prior
from jaxmix.posterior.completion import complete

__all__ = ["GaussianMixture", "MixtureImputer"]

_INITS = ("kmeans++", "random_rows")


def _log_densities(
    X: np.ndarray, means: np.ndarray, covariances: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``log w_k + log N(x_{u,C_u}; mu_{k,C_u}, Sigma_{k,C_uC_u})`` of every row and component.

    Float64, one missing-value pattern at a time (a Cholesky factor per component and pattern).
    A row with no observed entry gets ``log w_k``.

    Args:
        X: ``(n, d)`` with ``NaN`` at missing entries.
        means: ``(K, d)``.
        covariances: ``(K, d, d)`` full covariance matrices.
        weights: ``(K,)``.

    Returns:
        ``(n, K)`` float64.
    """
    n, _ = X.shape
    K = weights.shape[0]
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    out = np.empty((n, K))
    observed = ~np.isnan(X)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = np.reshape(inverse, -1)
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse == p)
        cols = np.flatnonzero(pattern)
        if cols.size == 0:
            out[rows] = log_w
            continue
        diff = X[np.ix_(rows, cols)][None, :, :] - means[:, None, cols]  # (K, m, c)
        chol = np.linalg.cholesky(covariances[:, cols][:, :, cols])  # (K, c, c)
        z = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (K, c, m)
        maha = np.sum(z * z, axis=1)  # (K, m)
        log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=-1)  # (K,)
        log_norm = 0.5 * (log_det + cols.size * math.log(2.0 * math.pi))
        out[rows] = (log_w[:, None] - log_norm[:, None] - 0.5 * maha).T
    return out


def _logsumexp(a: np.ndarray) -> np.ndarray:
    top = np.max(a, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return top[:, 0] + np.log(np.sum(np.exp(a - top), axis=1))


def _seed(random_state: Any) -> int:
    """``fit_em``'s seed from scikit-learn's ``random_state`` (an integer is the seed itself)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, (bool, np.bool_)
    ):
        if random_state < 0:
            raise ValueError(f"random_state must be non-negative; got {random_state}")
        return int(random_state)
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    raise TypeError(
        f"random_state must be None, a non-negative integer or a numpy RandomState; got "
        f"{random_state!r}"
    )


class _MixtureFit(BaseEstimator):
    """What both estimators share: the parameters of :func:`jaxmix.fit_em`, their checks, the
    fit, and the float64 row densities of the fitted mixture."""

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "diag",
        n_init: int = 1,
        max_iter: int = 1000,
        tol: float = 1e-6,
        min_var: float | None = None,
        prior: Prior | None = None,
        init_params: str = "kmeans++",
        rank: int | None = None,
        row_offset: bool | None = None,
        random_state: Any = None,
        split_merge: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.min_var = min_var
        self.prior = prior
        self.init_params = init_params
        self.rank = rank
        self.row_offset = row_offset
        self.random_state = random_state
        self.split_merge = split_merge

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ fitting

    def _fit_options(self) -> dict[str, Any]:
        """The checked keyword arguments of :func:`jaxmix.fit_em` (errors name the estimator's
        parameters)."""
        if isinstance(self.n_components, (bool, np.bool_)) or not isinstance(
            self.n_components, numbers.Integral
        ):
            raise TypeError(f"n_components must be an integer; got {self.n_components!r}")
        if self.n_components < 1:
            raise ValueError(f"n_components must be at least 1; got {self.n_components}")
        if not isinstance(self.covariance_type, str):
            raise TypeError(
                f"covariance_type must be a string, one of {sorted(FAMILIES)}; got "
                f"{self.covariance_type!r}"
            )
        if self.covariance_type not in FAMILIES:
            hint = (
                " (full covariances: use 'factor' with a rank)"
                if self.covariance_type in ("full", "tied")
                else ""
            )
            raise ValueError(
                f"covariance_type must be one of {sorted(FAMILIES)}; got "
                f"{self.covariance_type!r}{hint}"
            )
        options: dict[str, Any] = {
            "n_init": check_positive_int(self.n_init, "n_init"),
            "max_iter": check_positive_int(self.max_iter, "max_iter"),
            "tol": check_nonneg_float(self.tol, "tol"),
            "covariance": self.covariance_type,
            "init": check_choice(self.init_params, "init_params", _INITS),
            "seed": _seed(self.random_state),
            "split_merge": check_nonneg_int(self.split_merge, "split_merge"),
        }
        if self.min_var is not None:
            options["min_var"] = check_nonneg_float(self.min_var, "min_var")
        if self.prior is not None and not isinstance(self.prior, Prior):
            raise TypeError(f"prior must be None or a jaxmix.Prior; got {self.prior!r}")
        options["prior"] = self.prior
        if self.rank is not None:
            options["rank"] = self.rank
        if self.row_offset is not None:
            options["row_offset"] = self.row_offset
        return options

    def _fit_mixture(self, X: Any) -> np.ndarray:
        """Validate ``X``, fit, set the fitted attributes; returns the validated ``X``."""
        options = self._fit_options()
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        n, d = X.shape
        if self.n_components > n:
            raise ValueError(
                f"n_components={self.n_components} must be at most the number of rows ({n})"
            )
        if np.isnan(X).all():
            raise ValueError("X has no observed entry (every value is NaN)")
        result = fit_em(X, self.n_components, **options)
        params = result.params
        family = family_of(params)
        K = params.weights.shape[0]
        self.result_ = result
        self.means_ = np.asarray(params.mu, np.float64)
        self.weights_ = np.asarray(params.weights, np.float64)
        self.variances_ = np.asarray(params.var, np.float64)
        self.covariances_ = family.covariance_matrix(params.cov, K, d)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = float(result.objective) / n
        return X

    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)

    def _weighted_log_prob(self, X: np.ndarray) -> np.ndarray:
        return _log_densities(X, self.means_, self.covariances_, self.weights_)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of every row's observed entries under the fitted mixture.

        .. math::  \\log \\sum_k w_k\\, \\mathcal N(x_{u,C_u}; \\mu_{k,C_u}, \\Sigma_{k,C_uC_u})

        (a row with no observed entry scores 0).

        Args:
            X: ``(n, d)`` with ``NaN`` at missing entries.

        Returns:
            ``(n,)`` float64.
        """
        X = self._check_X(X)
        return _logsumexp(self._weighted_log_prob(X))


class GaussianMixture(DensityMixin, _MixtureFit):
    """A Gaussian mixture fit by jaxmix's EM, with missing entries (``NaN``) allowed.

    Parameters mirror :func:`jaxmix.fit_em` under scikit-learn's names. The covariance families
    are jaxmix's, not scikit-learn's: the shape of ``variances_`` follows the family, and
    ``covariances_`` always holds the full ``(K, d, d)`` matrices.

    ===============  ===========================  ==========================================
    covariance_type  ``variances_``               ``covariances_``
    ===============  ===========================  ==========================================
    ``"spherical"``  ``(K,)``                     ``var_k I``
    ``"diag"``       ``(K, d)``                   ``diag(var_k)``
    ``"shared"``     ``()`` (one for all)         ``var I``
    ``"factor"``     ``(K, d)`` (noise)           ``W_k W_k' + tau_k^2 1 1' + diag(psi_k)``
    ===============  ===========================  ==========================================

    Args:
        n_components: Number of components ``K`` (``fit_em``'s ``K``).
        covariance_type: The covariance family (``fit_em``'s ``covariance``); default
            ``"diag"`` (one variance per component and column: feature columns usually have
            different scales), where ``fit_em``'s default is ``"spherical"``.
        n_init: Number of restarts (all run in one compiled call).
        max_iter: Iteration cap per restart.
        tol: Relative tolerance on the objective.
        min_var: Floor on every variance, in data units; ``None``: ``fit_em``'s default.
        prior: ``None`` (maximum likelihood) or a :class:`jaxmix.Prior` (MAP-EM).
        init_params: ``"kmeans++"`` or ``"random_rows"`` (``fit_em``'s ``init``).
        rank: ``covariance_type="factor"`` only: factors per component.
        row_offset: ``covariance_type="factor"`` only: model a per-row offset.
        random_state: ``None``, an integer (``fit_em``'s ``seed``: the same seed gives the same
            fit as ``fit_em``) or a :class:`numpy.random.RandomState` (a seed is drawn from it).
        split_merge: Rounds of split-and-merge moves after the restarts (``fit_em``'s
            ``split_merge``; ``0``: none; needs ``n_components >= 3``).

    Attributes:
        result_: The :class:`jaxmix.EMResult` (pass it to :func:`jaxmix.complete`,
            :func:`jaxmix.predictive_summary`, :func:`jaxmix.save`, ...).
        means_: ``(K, d)``.
        weights_: ``(K,)``.
        variances_: The family's variance parameters (table above).
        covariances_: ``(K, d, d)`` full covariance matrices (``K d^2`` numbers: for matrices of
            thousands of columns, such as ratings, call :func:`jaxmix.fit_em` directly).
        converged_: Whether the winning restart met ``tol`` before ``max_iter``.
        n_iter_: Iterations of the winning restart.
        lower_bound_: EM's final objective (log-likelihood, plus the log-prior with a
            ``prior``) divided by the number of rows.
        n_features_in_: ``d``.
        feature_names_in_: The column names, when ``X`` was a DataFrame with string names.

    The estimator passes every check of ``sklearn.utils.estimator_checks.check_estimator``, none
    listed as an expected failure (``tests/test_sklearn.py``; scikit-learn itself skips
    ``check_array_api_input`` unless ``SCIPY_ARRAY_API=1`` is set, and with it set it passes).

    Example:
        >>> import numpy as np
        >>> from jaxmix.sklearn import GaussianMixture
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> gm = GaussianMixture(2, min_var=0.01, random_state=0).fit(X)
        >>> gm.means_.shape, gm.predict_proba(X).shape, gm.score_samples(X).shape
        ((2, 2), (4, 2), (4,))
    """

    def fit(self, X: Any, y: Any = None) -> GaussianMixture:
        """Fit the mixture by EM.

        Args:
            X: ``(n, d)`` array-like or DataFrame; ``NaN`` marks a missing entry (pandas ``NA``
                too). It is not modified.
            y: Ignored.

        Returns:
            ``self``.
        """
        self._fit_mixture(X)
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X).predict(X)``."""
        return self.fit(X).predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities ``p(k | x_{u,C_u})`` of the rows, ``(n, K)`` (rows sum to one; a row
        with no observed entry gets ``weights_``)."""
        X = self._check_X(X)
        log_prob = self._weighted_log_prob(X)
        resp = np.exp(log_prob - _logsumexp(log_prob)[:, None])
        return resp / resp.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable component of every row, ``(n,)`` integers."""
        return np.argmax(self.predict_proba(X), axis=1)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per row of the rows' observed entries (higher is better; the score
        :class:`~sklearn.model_selection.GridSearchCV` maximises).

        Args:
            X: ``(n, d)`` with ``NaN`` at missing entries.
            y: Ignored.

        Returns:
            ``score_samples(X).mean()``.
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw complete rows from the fitted mixture.

        Draws use ``random_state`` (an integer gives the same draws on every call).

        Args:
            n_samples: Number of rows, at least 1.

        Returns:
            ``(X, y)``: the rows ``(n_samples, d)`` and their components ``(n_samples,)``.
        """
        check_is_fitted(self)
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        y = rng.choice(
            self.weights_.shape[0], size=n_samples, p=self.weights_ / self.weights_.sum()
        )
        d = self.means_.shape[1]
        X = np.empty((n_samples, d))
        chol = np.linalg.cholesky(self.covariances_)  # (K, d, d)
        for k in np.unique(y):
            rows = np.flatnonzero(y == k)
            z = rng.standard_normal((rows.size, d))
            X[rows] = self.means_[k] + z @ chol[k].T
        return X, y

    def _n_parameters(self) -> int:
        K, d = self.means_.shape
        return family_of(self.result_.params).n_parameters(K, d)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion, scikit-learn's convention (**lower is better**).

        .. math::  -2 \\log L(X) + p \\log n

        with ``log L(X)`` the log-likelihood of ``X``'s observed entries and ``p`` the free
        parameters (:func:`jaxmix.n_parameters`). On the fit data this is ``-2`` times
        :func:`jaxmix.bic` (whose scale is the log-likelihood's: higher is better).
        """
        X = self._check_X(X)
        ll = float(np.sum(_logsumexp(self._weighted_log_prob(X))))
        return -2.0 * ll + self._n_parameters() * math.log(X.shape[0])

    def aic(self, X: Any) -> float:
        """Akaike information criterion, scikit-learn's convention (**lower is better**):
        ``-2 log L(X) + 2 p`` (``-2`` times :func:`jaxmix.aic` on the fit data)."""
        X = self._check_X(X)
        ll = float(np.sum(_logsumexp(self._weighted_log_prob(X))))
        return -2.0 * ll + 2.0 * self._n_parameters()


class MixtureImputer(OneToOneFeatureMixin, TransformerMixin, _MixtureFit):
    """Fill missing entries (``NaN``) with their conditional mean under a Gaussian mixture.

    ``fit`` fits the mixture by EM (as :class:`GaussianMixture`, with the same parameters);
    ``transform`` returns a copy of ``X`` with every missing entry replaced by
    :func:`jaxmix.complete`'s conditional mean given the row's observed entries (observed entries
    pass unchanged; a row with no observed entry gets the mixture's mean). ``score`` is the mean
    log-likelihood per row of the observed entries, so
    :class:`~sklearn.model_selection.GridSearchCV` can choose ``n_components`` on held-out rows.

    Args:
        n_components, covariance_type, n_init, max_iter, tol, min_var, prior, init_params,
        rank, row_offset, random_state, split_merge: As for :class:`GaussianMixture`.

    Attributes:
        result_, means_, weights_, variances_, covariances_, converged_, n_iter_,
        lower_bound_, n_features_in_, feature_names_in_: As for :class:`GaussianMixture`.

    The estimator passes every check of ``sklearn.utils.estimator_checks.check_estimator``, none
    listed as an expected failure (``tests/test_sklearn.py``; scikit-learn itself skips
    ``check_array_api_input`` unless ``SCIPY_ARRAY_API=1`` is set, and with it set it passes).

    Example:
        >>> import numpy as np
        >>> from jaxmix.sklearn import MixtureImputer
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> filled = MixtureImputer(2, min_var=0.01, random_state=0).fit_transform(X)
        >>> bool(np.isnan(filled).any()), bool(np.isnan(X).any())
        (False, True)
    """

    def fit(self, X: Any, y: Any = None) -> MixtureImputer:
        """Fit the mixture by EM on ``X`` (``NaN`` = missing; not modified); returns ``self``."""
        self._fit_mixture(X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """A completed copy of ``X``, ``(n, d)`` float64 without ``NaN``."""
        X = self._check_X(X)
        return np.asarray(complete(X, self.result_.params), np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per row of the rows' observed entries (higher is better; the score
        :class:`~sklearn.model_selection.GridSearchCV` maximises).

        Args:
            X: ``(n, d)`` with ``NaN`` at missing entries.
            y: Ignored.

        Returns:
            ``score_samples(X).mean()``.
        """
        return float(np.mean(self.score_samples(X)))
