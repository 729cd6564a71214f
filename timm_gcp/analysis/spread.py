"""Seed spread and the verdict on a GCP model against its twin: a difference counts only outside the spread.

One run says little: a few points of accuracy move with the seed. Every comparison is therefore over
seeds, paired (seed s of both models saw the same batches and started from the same trunk): the
per-seed differences GCP - twin, their mean, the 95 % Student-t interval of the mean and the paired
t-test's two-sided p-value. Fewer than `MIN_SEEDS` seeds, or differences that do not vary at all
(accuracy moves in steps of one test image, so two seeds often differ by the same count), say nothing
about the spread and get no verdict, with the reason in its place. A table of rows tests many
differences at once: `holm` judges them together (Holm's step-down adjustment of the p-values at 5 %),
each row's interval staying its own. See docs/analysis.md, "Seeds and spread".

The t quantiles are computed, not looked up: Student's t distribution function through the regularized
incomplete beta function (its continued fraction), inverted by bisection.
"""
import math
import statistics
from typing import Dict, List, Sequence

__all__ = ['ALPHA', 'MIN_SEEDS', 'NOT_ENOUGH_SEEDS', 'NO_SPREAD', 'compare', 'describe', 'holm', 't_cdf',
           't_quantile']

ALPHA = 0.05
MIN_SEEDS = 3
NOT_ENOUGH_SEEDS = f'not enough seeds to tell (a verdict needs {MIN_SEEDS})'
NO_SPREAD = 'no spread to tell: the same difference on every seed'
ONE_SEED = 'one seed: no spread'


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz's method)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return result


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):  # where the fraction converges fast; else by symmetry
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t with `df` degrees of freedom (0 < p < 1), to double precision."""
    if not 0 < p < 1 or not df > 0:
        raise ValueError(f'need 0 < p < 1 and df > 0, got p={p}, df={df}')
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2 * high
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def describe(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample standard deviation, min and max over seeds."""
    values = [float(v) for v in values]
    return dict(mean=statistics.fmean(values), std=statistics.stdev(values) if len(values) > 1 else 0.0,
                min=min(values), max=max(values), n=len(values))


def _verdict(mean: float, better: str) -> str:
    return 'GCP better' if (mean > 0) == (better == 'higher') else 'GCP worse'


def compare(gcp: Sequence[float], twin: Sequence[float], better: str = 'higher') -> Dict:
    """Paired comparison over seeds: both models' spread, the difference's mean, 95 % interval and p-value, a verdict.

    `better` ('higher' or 'lower') only words the verdict: 'GCP better' or 'GCP worse' where the
    paired t-test rejects no difference at 5 % (the interval excludes zero), 'within spread' where it
    does not; ONE_SEED, NOT_ENOUGH_SEEDS (fewer than MIN_SEEDS seeds) and NO_SPREAD (differences equal up
    to rounding, whose interval would have width zero) give no verdict and a NaN p-value. The verdict
    is the row's alone: `holm` judges the rows of a table together.
    """
    if len(gcp) != len(twin) or not gcp:
        raise ValueError(f'need the same number (>= 1) of seeds for both models, got {len(gcp)} and {len(twin)}')
    diffs = [g - t for g, t in zip(gcp, twin)]
    diff = describe(diffs)
    half, p = math.nan, math.nan
    if not all(math.isfinite(d) for d in diffs):
        verdict = 'no verdict: a value is not finite'
    elif len(diffs) == 1:
        verdict = ONE_SEED
    elif diff['std'] <= 1e-9 * max(1.0, *map(abs, diffs)):  # equal up to rounding
        verdict = NO_SPREAD
    else:
        n = len(diffs)
        half = t_quantile(1 - ALPHA / 2, n - 1) * diff['std'] / math.sqrt(n)
        if n < MIN_SEEDS:
            verdict = NOT_ENOUGH_SEEDS
        else:
            p = 2 * (1 - t_cdf(abs(diff['mean']) / (diff['std'] / math.sqrt(n)), n - 1))
            verdict = _verdict(diff['mean'], better) if p < ALPHA else 'within spread'
    return dict(gcp=describe(gcp), twin=describe(twin), diff=dict(diff, ci95=half, p=p), better=better,
                verdict=verdict, per_seed=dict(gcp=list(map(float, gcp)), twin=list(map(float, twin))))


def holm(comparisons: List[Dict]) -> None:
    """Judge `compare`'s results together: Holm's step-down adjustment of their p-values, in place.

    Each comparison with a p-value gets `diff['p_holm']` and its verdict from it at ALPHA (its
    interval is left unadjusted); those without one (too few seeds, no spread) keep their reason.
    """
    tested = sorted((c for c in comparisons if math.isfinite(c['diff']['p'])), key=lambda c: c['diff']['p'])
    running = 0.0
    for rank, c in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * c['diff']['p']))
        c['diff']['p_holm'] = running
        c['verdict'] = _verdict(c['diff']['mean'], c['better']) if running < ALPHA else 'within spread'
