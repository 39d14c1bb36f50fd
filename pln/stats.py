"""Uncertainty of benchmark numbers that includes training variance: seeds and test queries.

Every function takes per-query outcomes of a model as an array ``[S, Q]``: one row per training
seed, one column per test query (0/100 hits of ``R{n}@{m}``, or 100 x IoU for ``mIoU``); the
results are in the same units. Two models compared are evaluated on the same ``Q`` queries, in
the same column order.

The model behind the intervals (a two-way random-effects decomposition, per model ``m``)::

    y[s, q] = mu_m + u[s] + v[q] + e[s, q]

with ``u`` the seed effect (variance ``seed_var``), ``v`` the query effect (shared by all seeds
of the model, and for two models correlated through the shared queries) and ``e`` what varies
with both (``resid_var``). The mean over a design of ``S`` seeds and ``Q`` queries has variance
``seed_var / S + (query_var + resid_var / S) / Q``; a paired difference of A and B has
``seed_var_a / S_a + seed_var_b / S_b + var(d_q) / Q`` where ``d_q`` is the per-query difference
of the seed means (its variance holds the query effects of both models, minus their covariance,
and both residuals).

Estimation (:func:`variance_components`): ``resid_var`` is the residual mean square of the
two-way table and ``seed_var = max(0, var(row means) - resid_var / Q)``. The interval
(:func:`paired_effect`) splits the variance of the estimate in two independent parts: the seed
part ``var(row means of A) / S_a + var(row means of B) / S_b`` (Welch; each row mean carries its
seed effect and its own residual, so this part has ``S - 1`` degrees of freedom per model) and
the shared-query part ``max(0, var(d_q) - resid_a / S_a - resid_b / S_b) / Q`` (the query
effects common to all seeds, net of the residuals already in the seed part). The interval is
``estimate ± t(df) * se`` with Welch-Satterthwaite degrees of freedom: with 3 seeds the seed
part has 2-4 degrees of freedom, so the multiplier is near 2.8-4.3 rather than 1.96.

Why not the obvious alternatives (``benchmarks/interval_coverage.py`` measures them; the README
quotes the figures): a plain two-level bootstrap (resample seeds, then shared queries) is
available as ``method="bootstrap"``; with 3 seeds it under-covers, because a resample of 3 seeds
under-states their variance by the factor 2/3 and its percentiles act like a normal, not a
t(2), quantile. Putting the residual into the query part instead (seed part from the
estimated ``seed_var``) gives a Satterthwaite df that collapses towards the query part's when
the seed estimate is small by chance, and under-covers by a few points with 3 seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc, chdtri, fdtri, stdtrit

METHOD_T = "variance components + Welch-Satterthwaite t"
METHOD_PIVOT = "variance components + generalized pivot"
METHOD_BOOTSTRAP = "two-level bootstrap (seeds, then shared queries), percentile"

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)

# Judgement of a seed standard deviation against a stability target (sd_target_verdict).
SD_MET = "met"
SD_NOT_MET = "not met"
SD_UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class Effect:
    """A mean or a paired difference with its interval (``low``, ``high``: NaN when not estimable)."""

    estimate: float
    low: float
    high: float
    n_seeds_a: int
    n_seeds_b: int
    n_queries: int
    testable: bool
    method: str

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Components:
    """Estimated variance components of a paired design (see the module docstring).

    ``query_var`` is the variance of a single query's paired difference of seed means *net of*
    the residuals (``var(d_q) - resid_a / S_a - resid_b / S_b``, floored at 0), so that a
    design with other seed counts can be evaluated. For one model alone, the ``_b`` fields are 0.
    """

    seed_var_a: float
    seed_var_b: float
    query_var: float
    resid_var_a: float
    resid_var_b: float

    def _parts(self, n_seeds_a: int, n_seeds_b: int, n_queries: int) -> list[tuple[float, int]]:
        """(variance, dof) of the seed part of each model and of the shared-query part."""
        parts = [((self.seed_var_a + self.resid_var_a / n_queries) / n_seeds_a, n_seeds_a - 1)]
        if n_seeds_b:
            parts.append(((self.seed_var_b + self.resid_var_b / n_queries) / n_seeds_b, n_seeds_b - 1))
        parts.append((self.query_var / n_queries, n_queries - 1))
        return parts

    def variance(self, n_seeds_a: int, n_seeds_b: int, n_queries: int) -> float:
        """Variance of the (paired) mean difference of a design of that many seeds and queries."""
        return sum(v for v, _ in self._parts(n_seeds_a, n_seeds_b, n_queries))

    def dof(self, n_seeds_a: int, n_seeds_b: int, n_queries: int) -> float:
        """Welch-Satterthwaite degrees of freedom of :meth:`variance` for that design."""
        return _satterthwaite(self._parts(n_seeds_a, n_seeds_b, n_queries))


def _satterthwaite(parts: list[tuple[float, int]]) -> float:
    """Degrees of freedom of a sum of independent variance estimates ``(value, dof)``."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / d for v, d in parts if d > 0 and v > 0)
    if total <= 0 or denom <= 0:
        return math.inf
    return total * total / denom


def _check(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise ValueError(f"{name}: expected per-query outcomes [S, Q] with S >= 1, Q >= 2, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: outcomes must be finite")
    return x


def _seed_and_resid(x: np.ndarray) -> tuple[float, float]:
    """(seed variance, residual variance) of one model's ``[S, Q]`` table; NaN with one seed."""
    s, q = x.shape
    if s < 2:
        return math.nan, math.nan
    rows = x.mean(axis=1, keepdims=True)
    cols = x.mean(axis=0, keepdims=True)
    resid = x - rows - cols + x.mean()
    resid_var = float((resid ** 2).sum() / ((s - 1) * (q - 1)))
    seed_var = max(0.0, float(rows.var(ddof=1)) - resid_var / q)
    return seed_var, resid_var


def variance_components(a: np.ndarray, b: np.ndarray | None = None) -> Components:
    """Estimate the components from one model ``a [S_a, Q]`` or a pair ``a``, ``b [S_b, Q]``.

    Needs at least 2 seeds per model for the seed and residual terms (NaN otherwise).
    """
    a = _check(a, "a")
    seed_a, resid_a = _seed_and_resid(a)
    if b is None:
        d = a.mean(axis=0)
        seed_b = resid_b = 0.0
        net = (resid_a / a.shape[0]) if not math.isnan(resid_a) else 0.0
    else:
        b = _check(b, "b")
        if b.shape[1] != a.shape[1]:
            raise ValueError(f"a and b must hold the same queries: {a.shape[1]} != {b.shape[1]}")
        seed_b, resid_b = _seed_and_resid(b)
        d = a.mean(axis=0) - b.mean(axis=0)
        net = sum(r / s for r, s in ((resid_a, a.shape[0]), (resid_b, b.shape[0])) if not math.isnan(r))
    query_var = max(0.0, float(d.var(ddof=1)) - net)
    return Components(seed_a, seed_b, query_var, resid_a, resid_b)


def _interval_parts(tables: list[np.ndarray], d: np.ndarray) -> list[tuple[float, int]]:
    """(variance, dof) of the seed part of each ``[S, Q]`` table and of the shared-query part.

    ``d [Q]``: the per-query values (seed means, or their difference). Seed part: the variance
    of the table's row means over ``S``; query part: ``var(d)`` net of the residuals, over ``Q``.
    """
    q = d.shape[0]
    parts = [(float(x.mean(axis=1).var(ddof=1)) / x.shape[0], x.shape[0] - 1) for x in tables]
    net = sum(_seed_and_resid(x)[1] / x.shape[0] for x in tables)
    parts.append((max(0.0, float(d.var(ddof=1)) - net) / q, q - 1))
    return parts


def _t_interval(estimate: float, parts: list[tuple[float, int]], level: float) -> tuple[float, float]:
    """``estimate ± t(df) * se``, df by Welch-Satterthwaite over the parts."""
    var = sum(v for v, _ in parts)
    half = float(stdtrit(_satterthwaite(parts), 0.5 + level / 2)) * math.sqrt(var)
    return estimate - half, estimate + half


def _pivot_interval(estimate: float, parts: list[tuple[float, int]], level: float, n_draws: int, seed: int
                    ) -> tuple[float, float]:
    """Generalized-pivot interval: quantiles of ``estimate - Z * sqrt(sum_i v_i * df_i / chi2(df_i))``.

    Each variance estimate ``v_i`` is replaced by a draw from its fiducial distribution, so a
    part known from 2 degrees of freedom widens the interval as much as it is uncertain.
    """
    rng = np.random.default_rng(seed)
    var = sum(v * df / rng.chisquare(df, n_draws) for v, df in parts)
    draws = estimate - rng.standard_normal(n_draws) * np.sqrt(var)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _bootstrap(a: np.ndarray, b: np.ndarray | None, n_boot: int, seed: int, level: float
               ) -> tuple[float, float]:
    """Percentile interval of a two-level bootstrap: seeds of each model, then shared queries."""
    rng = np.random.default_rng(seed)
    q = a.shape[1]
    cols = rng.multinomial(q, np.full(q, 1.0 / q), size=n_boot) / q  # [n_boot, Q] query weights

    def resampled(x: np.ndarray) -> np.ndarray:
        s = x.shape[0]
        rows = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot) / s  # [n_boot, S]
        return np.einsum("bq,bq->b", rows @ x, cols)

    stat = resampled(a) - (resampled(b) if b is not None else 0.0)
    tail = (1 - level) / 2
    low, high = np.quantile(stat, [tail, 1 - tail])
    return float(low), float(high)


def mean_interval(x: np.ndarray, *, level: float = 0.95, min_seeds: int = 2, method: str = "pivot",
                  n_boot: int = 2000, seed: int = 0) -> Effect:
    """Mean of one model's outcomes ``x [S, Q]`` over seeds and queries, with its interval.

    The interval covers the model's expected score over training seeds and test queries; it
    needs ``min_seeds`` seeds (at least 2: one seed says nothing of seed variance), else NaN.
    ``method``: ``"pivot"`` (default; ``n_boot`` fiducial draws from ``seed``), ``"t"`` or
    ``"bootstrap"``. The t interval under-covers a lone mean with 3 seeds (its Satterthwaite df
    is too optimistic when the seed variance is small by chance); the pivot does not.
    """
    x = _check(x, "x")
    s, q = x.shape
    estimate = float(x.mean())
    testable = s >= max(2, min_seeds)
    if not testable:
        return Effect(estimate, math.nan, math.nan, s, 0, q, False, _method_name(method))
    if method == "bootstrap":
        low, high = _bootstrap(x, None, n_boot, seed, level)
    elif method == "t":
        low, high = _t_interval(estimate, _interval_parts([x], x.mean(axis=0)), level)
    else:
        low, high = _pivot_interval(estimate, _interval_parts([x], x.mean(axis=0)), level, n_boot, seed)
    return Effect(estimate, low, high, s, 0, q, True, _method_name(method))


def paired_effect(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                  min_seeds: int = 3, method: str = "t") -> Effect:
    """Paired effect ``mean(A) - mean(B)`` of two models on the same queries, with its interval.

    ``a [S_a, Q]``, ``b [S_b, Q]``: the seeds of the two models need not match (they are
    independent trainings); the queries must. ``method`` ``"t"`` (default), ``"pivot"`` or
    ``"bootstrap"`` (``n_boot`` draws / resamples from ``seed``); the pivot over-covers a paired
    difference (two seed parts of 2 df each make its fiducial variance heavy-tailed).
    ``testable`` is False when either side has fewer than ``min_seeds`` seeds; the interval is still given when both have at least 2 (NaN otherwise).
    """
    a, b = _check(a, "a"), _check(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must hold the same queries: {a.shape[1]} != {b.shape[1]}")
    (sa, q), sb = a.shape, b.shape[0]
    estimate = float(a.mean() - b.mean())
    testable = min(sa, sb) >= min_seeds
    if min(sa, sb) < 2:
        low = high = math.nan
    elif method == "bootstrap":
        low, high = _bootstrap(a, b, n_boot, seed, level)
    elif method == "pivot":
        low, high = _pivot_interval(estimate, _interval_parts([a, b], a.mean(axis=0) - b.mean(axis=0)), level,
                                    n_boot, seed)
    else:
        low, high = _t_interval(estimate, _interval_parts([a, b], a.mean(axis=0) - b.mean(axis=0)), level)
    return Effect(estimate, low, high, sa, sb, q, testable, _method_name(method))


def _linear_terms(a: np.ndarray, b: np.ndarray, relative: bool) -> tuple[float, list[tuple[float, int]]]:
    """(estimate, variance parts) of ``mean(A) - mean(B)`` or, ``relative``, ``mean(A) / mean(B) - 1``.

    The ratio is linearised around the means: its error is that of the paired difference of
    ``a / mean(B)`` and ``b * mean(A) / mean(B)^2`` (delta method). NaN estimate when
    ``mean(B)`` is 0 or a side has one seed.
    """
    a, b = _check(a, "a"), _check(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must hold the same queries: {a.shape[1]} != {b.shape[1]}")
    ma, mb = float(a.mean()), float(b.mean())
    if relative:
        if mb == 0:
            return math.nan, []
        estimate, a, b = ma / mb - 1, a / mb, b * ma / (mb * mb)
    else:
        estimate = ma - mb
    if min(a.shape[0], b.shape[0]) < 2:
        return estimate, []
    return estimate, _interval_parts([a, b], a.mean(axis=0) - b.mean(axis=0))


def contrast(pairs: list[tuple[np.ndarray, np.ndarray]], weights: list[float], *, relative: bool = False,
             level: float = 0.95, min_seeds: int = 3) -> Effect:
    """``sum_i w_i * effect_i`` of paired effects on disjoint query sets, with a t interval.

    ``pairs``: ``(a_i [S, Q_i], b_i [S, Q_i])``; ``effect_i`` is their paired difference, or
    with ``relative`` their relative gain (a fraction). E.g. weights ``[1, -1]`` on TACoS and
    ActivityNet: "the gain is larger on TACoS". The terms' variances add (independent query sets
    and trainings; for the same trained models on two query groups the seed effects are shared,
    and adding their variances over-states the error, i.e. is conservative). Welch-Satterthwaite
    df over all parts. ``n_seeds_*``: the smallest over the pairs; ``n_queries``: the sum.
    """
    estimate, parts = 0.0, []
    for (a, b), w in zip(pairs, weights, strict=True):
        est, p = _linear_terms(a, b, relative)
        estimate += w * est
        parts += [(w * w * v, df) for v, df in p] if p else [(math.nan, 1)]
    sa = min(np.shape(a)[0] for a, _ in pairs)
    sb = min(np.shape(b)[0] for _, b in pairs)
    q = sum(np.shape(a)[1] for a, _ in pairs)
    method = f"{'delta method, ' if relative else ''}{METHOD_T}"
    if math.isnan(estimate) or any(math.isnan(v) for v, _ in parts):
        return Effect(estimate, math.nan, math.nan, sa, sb, q, False, method)
    low, high = _t_interval(estimate, parts, level)
    return Effect(estimate, low, high, sa, sb, q, min(sa, sb) >= min_seeds, method)


def relative_effect(a: np.ndarray, b: np.ndarray, *, level: float = 0.95, min_seeds: int = 3) -> Effect:
    """Relative gain ``mean(A) / mean(B) - 1`` (a fraction) with a delta-method t interval."""
    return contrast([(a, b)], [1.0], relative=True, level=level, min_seeds=min_seeds)


def _seed_parts(a: np.ndarray, b: np.ndarray | None, paired: bool
                ) -> tuple[float, list[tuple[float, int]], int, int]:
    """(estimate, variance parts, S_a, S_b) of per-seed values; no parts below 2 seeds."""
    a = np.asarray(a, dtype=np.float64)
    if b is None or paired:
        x = a if b is None else a - np.asarray(b, dtype=np.float64)
        parts = [(float(x.var(ddof=1)) / x.size, x.size - 1)] if x.size > 1 else []
        return float(x.mean()), parts, x.size, (x.size if b is not None else 0)
    b = np.asarray(b, dtype=np.float64)
    parts = [(float(x.var(ddof=1)) / x.size, x.size - 1) for x in (a, b)] if min(a.size, b.size) > 1 else []
    return float(a.mean() - b.mean()), parts, a.size, b.size


def seed_effect(a: np.ndarray, b: np.ndarray | None = None, *, paired: bool = False, level: float = 0.95,
                min_seeds: int = 3) -> Effect:
    """Mean (or difference) of per-seed metric values ``a [S_a]`` (``b [S_b]``) with a t interval.

    For numbers stored only per run (e.g. a strategy whose per-query outcomes are not kept):
    the seed-to-seed spread holds the seed variance and the part of the query noise that varies
    with the seed, not the query sample shared by all seeds, so the interval is narrower than
    :func:`paired_effect`'s would be. ``paired``: ``a`` and ``b`` come from the same trainings
    (two strategies of one model) and are differenced seed by seed; otherwise Welch.
    """
    estimate, parts, sa, sb = _seed_parts(a, b, paired)
    method = "seed-level t (per-query outcomes not stored)"
    if not parts:
        return Effect(estimate, math.nan, math.nan, sa, sb, 0, False, method)
    low, high = _t_interval(estimate, parts, level)
    return Effect(estimate, low, high, sa, sb, 0, min(sa, sb or sa) >= min_seeds, method)


def _mde(parts: list[tuple[float, int]], level: float, power: float) -> float:
    """``(t(1 - alpha/2, df) + t(power, df)) * se`` for variance parts ``(value, dof)``."""
    var = sum(v for v, _ in parts)
    if not parts or math.isnan(var):
        return math.nan
    df = _satterthwaite(parts)
    return float((stdtrit(df, 0.5 + level / 2) + stdtrit(df, power)) * math.sqrt(var))


def design_mde(comp: Components, n_seeds_a: int, n_seeds_b: int, n_queries: int, *, level: float = 0.95,
               power: float = 0.8) -> float:
    """MDE of a design from known components: ``(t(1 - alpha/2, df) + t(power, df)) * se``.

    ``se`` and ``df`` (Welch-Satterthwaite) are the design's (:meth:`Components.variance`,
    :meth:`Components.dof`). NaN when a seed variance is unknown (a model with one seed).
    """
    if math.isnan(comp.seed_var_a) or math.isnan(comp.seed_var_b):
        return math.nan
    return _mde(comp._parts(n_seeds_a, n_seeds_b, n_queries), level, power)


def contrast_mde(pairs: list[tuple[np.ndarray, np.ndarray]], weights: list[float], *, relative: bool = False,
                 level: float = 0.95, power: float = 0.8) -> float:
    """MDE of :func:`contrast` at the data's own design (NaN when a side has one seed)."""
    parts = []
    for (a, b), w in zip(pairs, weights, strict=True):
        est, p = _linear_terms(a, b, relative)
        if not p or math.isnan(est):
            return math.nan
        parts += [(w * w * v, df) for v, df in p]
    return _mde(parts, level, power)


def seed_mde(a: np.ndarray, b: np.ndarray | None = None, *, paired: bool = False, level: float = 0.95,
             power: float = 0.8) -> float:
    """MDE of :func:`seed_effect` at the data's own number of seeds (NaN below 2)."""
    return _mde(_seed_parts(a, b, paired)[1], level, power)


def minimum_detectable_effect(a: np.ndarray, b: np.ndarray, *, n_seeds: int | None = None,
                              n_queries: int | None = None, level: float = 0.95, power: float = 0.8) -> float:
    """Smallest true effect the paired test detects with probability ``power`` (two-sided ``level``).

    The variance components are estimated from ``a [S_a, Q]`` and ``b [S_b, Q]``
    (:func:`variance_components`); the design is ``n_seeds`` seeds per model and ``n_queries``
    queries (default: the data's own). See :func:`design_mde`. NaN when a model has fewer than
    2 seeds (its seed variance is unknown).
    """
    comp = variance_components(a, b)
    sa, sb = (n_seeds, n_seeds) if n_seeds is not None else (np.shape(a)[0], np.shape(b)[0])
    q = n_queries if n_queries is not None else np.shape(a)[1]
    return design_mde(comp, sa, sb, q, level=level, power=power)


@dataclass(frozen=True)
class Spread:
    """A seed standard deviation (ddof 1) with its interval and degrees of freedom (``low`` and
    ``high`` NaN when ``df`` is 0)."""

    sd: float
    low: float
    high: float
    df: int


def sd_ratio_bounds(df: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` interval of a normal sample's standard deviation as multiples of the
    estimate, ``(sqrt(df / chi2_{(1+level)/2}(df)), sqrt(df / chi2_{(1-level)/2}(df)))``
    (``df`` >= 1): 0.52 and 6.28 for 2 degrees of freedom at 95%."""
    alpha = 1.0 - level
    # chdtri(df, p) is the chi-square quantile whose upper tail is p.
    return (math.sqrt(df / float(chdtri(df, alpha / 2))), math.sqrt(df / float(chdtri(df, 1.0 - alpha / 2))))


def _sd_interval(variance: float, df: int, level: float) -> Spread:
    """``sqrt(variance)`` with its chi-square interval (:func:`sd_ratio_bounds`)."""
    if df <= 0:
        return Spread(math.nan, math.nan, math.nan, 0)
    sd = math.sqrt(variance)
    low, high = sd_ratio_bounds(df, level)
    return Spread(sd, sd * low, sd * high, df)


def seed_spread(values: np.ndarray, *, level: float = 0.95) -> Spread:
    """The seed standard deviation of one model's metric, ``values`` ``[S]`` (one per seed,
    ddof 1), with its ``level`` interval, assuming normal seed-to-seed variation.

    With 3 seeds (2 degrees of freedom) the 95% interval runs from 0.52 to 6.28 times the
    estimate: one model's 3-seed s.d. says little about its true spread.
    """
    return pooled_seed_spread([values], level=level)


def pooled_seed_spread(groups: list[np.ndarray], *, level: float = 0.95) -> Spread:
    """The pooled seed standard deviation of several models, ``groups`` a list of ``[S_i]``:
    ``sqrt(sum_i (S_i - 1) s_i^2 / sum_i (S_i - 1))`` with ``sum_i (S_i - 1)`` degrees of
    freedom and its chi-square interval, assuming one seed variance common to the models
    (models with one seed add nothing)."""
    df, ss = 0, 0.0
    for g in groups:
        x = np.asarray(g, dtype=np.float64).ravel()
        if x.size > 1:
            df += x.size - 1
            ss += float(((x - x.mean()) ** 2).sum())
    return _sd_interval(ss / df if df else math.nan, df, level)


def pair_spread(differences: np.ndarray, *, level: float = 0.95) -> Spread:
    """The standard deviation of one run implied by ``differences`` ``[K]`` between the two runs
    of K pairs, each pair two draws of one model with mean difference 0 (e.g. one experiment
    computed on two machines): ``sqrt(sum d^2 / (2 K))`` with K degrees of freedom and its
    chi-square interval. For differences 1, -2 and 3: ``sqrt(14 / 6)`` = 1.53 on 3 df."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    return _sd_interval(float((d ** 2).sum()) / (2 * d.size) if d.size else math.nan, int(d.size), level)


@dataclass(frozen=True)
class Homogeneity:
    """A test that several models share one seed variance: its statistic, degrees of freedom,
    p-value and the number of models it used (NaN throughout when it is undefined)."""

    statistic: float
    df: int
    p: float
    models: int


def common_variance_test(groups: list[np.ndarray]) -> Homogeneity:
    """Bartlett's test that the models of ``groups`` (a list of ``[S_i]``, one value per seed)
    share one seed variance, assuming normal seed-to-seed variation.

    With ``d_i = S_i - 1``, ``D = sum d_i``, ``s_i^2`` the models' variances and ``s_p^2 = sum d_i
    s_i^2 / D`` the pooled one: ``T = (D ln s_p^2 - sum d_i ln s_i^2) / C`` with ``C = 1 + (sum
    1/d_i - 1/D) / (3 (k - 1))`` for ``k`` models, referred to chi-square with ``k - 1`` degrees of
    freedom. Models with one seed add nothing. NaN when fewer than 2 models have 2 seeds or a
    model's seeds all score the same (its log-variance is undefined). With 2 degrees of freedom a
    model (3 seeds) the test has little power: a large p-value does not show the variances equal,
    it says the data give no reason to estimate them apart.
    """
    df_i, var_i = [], []
    for g in groups:
        x = np.asarray(g, dtype=np.float64).ravel()
        if x.size > 1:
            df_i.append(x.size - 1)
            var_i.append(float(x.var(ddof=1)))
    k = len(df_i)
    if k < 2 or min(var_i) <= 0.0:
        return Homogeneity(math.nan, max(k - 1, 0), math.nan, k)
    d, v = np.array(df_i, dtype=np.float64), np.array(var_i)
    total = float(d.sum())
    pooled = float((d * v).sum() / total)
    c = 1.0 + (float((1.0 / d).sum()) - 1.0 / total) / (3.0 * (k - 1))
    # Non-negative in exact arithmetic (the log of a weighted mean is at least the weighted mean of
    # the logs); the clamp keeps rounding from printing -0.00 for equal variances.
    t = max(0.0, (total * math.log(pooled) - float((d * np.log(v)).sum())) / c)
    # chdtrc(df, x) is the chi-square upper tail above x.
    return Homogeneity(t, k - 1, float(chdtrc(k - 1, t)), k)


def chance_over_target(sd: float, df: int, target: float) -> float:
    """The probability that a model's seed s.d. estimated on ``df`` degrees of freedom exceeds
    ``target`` when its true s.d. is ``sd`` (normal seeds: ``df s^2 / sd^2`` is chi-square with
    ``df`` degrees of freedom): 0.34 for 3 seeds whose true s.d. is 2.42 against 2.5. NaN for
    ``df`` 0 or a non-positive ``sd``."""
    if df < 1 or not sd > 0:
        return math.nan
    return float(chdtrc(df, df * (target / sd) ** 2))


@dataclass(frozen=True)
class Ratio:
    """A ratio of two estimates with its interval."""

    ratio: float
    low: float
    high: float


def variance_ratio(a: Spread, b: Spread, *, level: float = 0.95) -> Ratio:
    """The ratio of two independent pooled seed variances, ``a.sd^2 / b.sd^2``, with its ``level``
    interval by the F distribution with ``(a.df, b.df)`` degrees of freedom:
    ``[R / F_{(1+level)/2}, R / F_{(1-level)/2}]`` (normal seed-to-seed variation assumed). With
    14 and 14 degrees of freedom at 95% the interval runs from 0.34 to 2.98 times ``R``. NaN
    throughout without degrees of freedom on either side or when ``b`` has no spread (``b.sd`` 0,
    e.g. seeds that all score the same), where the ratio is undefined."""
    if a.df < 1 or b.df < 1 or not b.sd > 0:
        return Ratio(math.nan, math.nan, math.nan)
    r = float(a.sd ** 2 / b.sd ** 2)
    alpha = 1.0 - level
    # fdtri(dfn, dfd, p) is the F quantile whose lower tail is p.
    return Ratio(r, r / float(fdtri(a.df, b.df, 1.0 - alpha / 2)), r / float(fdtri(a.df, b.df, alpha / 2)))


def t_mean(values: np.ndarray, *, level: float = 0.95) -> Ratio:
    """The mean of independent ``values`` ``[K]`` with its Student-t ``level`` interval (``K - 1``
    degrees of freedom; NaN bounds for one value), as a :class:`Ratio` (``ratio`` = the mean)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    mean = float(x.mean())
    if x.size < 2:
        return Ratio(mean, math.nan, math.nan)
    half = float(stdtrit(x.size - 1, 1.0 - (1.0 - level) / 2)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Ratio(mean, mean - half, mean + half)


def sd_target_verdict(spread: Spread, target: float) -> str:
    """A seed standard deviation against a stability target ``sd <= target``: met when the
    interval's upper end is at or below it, not met when its lower end is above it,
    undetermined otherwise (also without an interval)."""
    if math.isnan(spread.low) or math.isnan(spread.high):
        return SD_UNDETERMINED
    if spread.high <= target:
        return SD_MET
    if spread.low > target:
        return SD_NOT_MET
    return SD_UNDETERMINED


def verdict(paper_effect: float, ours: Effect) -> str:
    """The verdict of one comparison: our effect against the sign of the paper's.

    reproduced: same sign as the paper's effect and our interval excludes 0; contradicted:
    opposite sign and our interval excludes 0; inconclusive otherwise (also when the paper's
    effect is 0 or missing); not testable when a side has fewer than ``min_seeds`` seeds.
    """
    if not ours.testable or math.isnan(ours.low) or math.isnan(ours.high):
        return NOT_TESTABLE
    if math.isnan(paper_effect) or paper_effect == 0 or not ours.excludes_zero:
        return INCONCLUSIVE
    return REPRODUCED if (ours.estimate > 0) == (paper_effect > 0) else CONTRADICTED


def combine_verdicts(parts: list[str]) -> str:
    """Verdict of a compound claim (e.g. "every multi-stage beats every one-stage") from its parts.

    Any part contradicted -> contradicted; else any part not testable -> not testable; else all
    reproduced -> reproduced; else inconclusive. A compound claim holds only if every part does,
    so one reproduced part does not carry the others.
    """
    if not parts:
        return NOT_TESTABLE
    if CONTRADICTED in parts:
        return CONTRADICTED
    if NOT_TESTABLE in parts:
        return NOT_TESTABLE
    if all(p == REPRODUCED for p in parts):
        return REPRODUCED
    return INCONCLUSIVE


_METHODS = {"t": METHOD_T, "pivot": METHOD_PIVOT, "bootstrap": METHOD_BOOTSTRAP}


def _method_name(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(_METHODS)}")
    return _METHODS[method]
