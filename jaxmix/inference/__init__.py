"""Inference algorithms: EM (:mod:`jaxmix.inference.em`), NumPyro SVI
(:mod:`jaxmix.inference.svi`) and K-means (:mod:`jaxmix.inference.kmeans`), with their
initialisations (:mod:`jaxmix.inference.init`)."""

from jaxmix.inference.em import EMState, SuffStats, e_step, fit_em, m_step, suff_stats
from jaxmix.inference.init import kmeans_plus_plus, random_rows
from jaxmix.inference.kmeans import kmeans
from jaxmix.inference.svi import fit_svi

__all__ = [
    "EMState",
    "SuffStats",
    "e_step",
    "fit_em",
    "fit_svi",
    "kmeans",
    "kmeans_plus_plus",
    "m_step",
    "random_rows",
    "suff_stats",
]
