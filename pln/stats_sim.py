"""Simulated per-query outcomes with known seed and query variance, to measure interval coverage.

Hits (0/100) come from a latent probit model: model ``m``, seed ``s`` and query ``q`` hit when
``mu_m + u[m, s] + v[q] + w[m, q] + eps[m, s, q] > 0`` with independent Gaussians of standard
deviations ``seed_sd`` (u), ``query_sd`` (v, shared by the two models: the pairing),
``model_query_sd`` (w) and 1 (eps). Over the population of seeds and queries, model ``m`` hits
with probability ``Phi(mu_m / tau)``, ``tau^2 = seed_sd^2 + query_sd^2 + model_query_sd^2 + 1``,
so the true mean and the true paired effect are known exactly.

Used by ``tests/test_stats.py`` and ``benchmarks/interval_coverage.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from pln.stats import mean_interval, paired_effect


@dataclass(frozen=True)
class Design:
    """One simulated experiment: two models, ``n_seeds`` each, on ``n_queries`` shared queries.

    ``rate_a`` / ``rate_b`` are the population hit rates (fractions) of the two models.
    """

    n_seeds: int
    n_queries: int
    rate_a: float = 0.45
    rate_b: float = 0.40
    seed_sd: float = 0.15
    query_sd: float = 1.0
    model_query_sd: float = 0.5

    @property
    def tau(self) -> float:
        return math.sqrt(self.seed_sd ** 2 + self.query_sd ** 2 + self.model_query_sd ** 2 + 1.0)

    def latent_mean(self, rate: float) -> float:
        return float(sps.norm.ppf(rate)) * self.tau

    @property
    def true_effect(self) -> float:
        """The population paired effect in percentage points."""
        return 100.0 * (self.rate_a - self.rate_b)


def simulate(design: Design, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One draw of the design: hits ``a [S, Q]`` and ``b [S, Q]`` in {0, 100}."""
    s, q = design.n_seeds, design.n_queries
    v = rng.normal(0.0, design.query_sd, size=q)
    out = []
    for mu in (design.latent_mean(design.rate_a), design.latent_mean(design.rate_b)):
        latent = (mu + rng.normal(0.0, design.seed_sd, size=(s, 1)) + v
                  + rng.normal(0.0, design.model_query_sd, size=q) + rng.normal(size=(s, q)))
        out.append(np.where(latent > 0, 100.0, 0.0))
    return out[0], out[1]


def coverage(design: Design, n_designs: int, *, seed: int = 0, method: str | None = None, n_boot: int = 500
             ) -> dict[str, float]:
    """Fraction of ``n_designs`` draws whose 95% intervals cover the truth.

    Returns ``paired`` (the paired effect's interval covers ``true_effect``), ``mean`` (model A's
    mean interval covers ``100 * rate_a``), with ``method`` for both or (None) each one's default, ``mc_se`` (the Monte Carlo standard error of a
    coverage of 95% over that many draws) and ``half_width`` (the paired interval's mean half width).
    """
    rng = np.random.default_rng(seed)
    hit_paired = hit_mean = 0
    widths = []
    for i in range(n_designs):
        a, b = simulate(design, rng)
        kw = {"n_boot": n_boot, "seed": i} | ({"method": method} if method else {})
        eff = paired_effect(a, b, **kw)
        mean = mean_interval(a, **kw)
        hit_paired += eff.low <= design.true_effect <= eff.high
        hit_mean += mean.low <= 100.0 * design.rate_a <= mean.high
        widths.append((eff.high - eff.low) / 2)
    return {"paired": hit_paired / n_designs, "mean": hit_mean / n_designs,
            "mc_se": math.sqrt(0.95 * 0.05 / n_designs), "half_width": float(np.mean(widths))}
