"""Seed spread and the verdict on a GCP model against its twin: a difference counts only outside the spread.

One run says little: a few points of accuracy move with the seed. Every comparison is therefore over
seeds, paired (seed s of both
models saw the same batches and started from the same trunk): the per-seed differences GCP - twin,
their mean and the 95 % t-interval of the mean. Only an interval that excludes zero is a difference;
otherwise the verdict says "within spread". Fewer than `MIN_SEEDS` seeds, or differences that do not
vary at all (accuracy moves in steps of one test image, so two seeds often differ by the same count),
say nothing about the spread and get no verdict. See docs/analysis.md, "Seeds and spread".
"""
import math
import statistics
from typing import Dict, Sequence

__all__ = ['MIN_SEEDS', 'NOT_ENOUGH_SEEDS', 'compare', 'describe']

MIN_SEEDS = 3
NOT_ENOUGH_SEEDS = 'not enough seeds to tell'

# two-sided 95 % quantiles of Student's t by degrees of freedom; beyond the table the normal's 1.96
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}


def _t95(df: int) -> float:
    known = [d for d in _T95 if d <= df]
    return _T95[max(known)] if df <= 30 else 1.96


def describe(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample standard deviation, min and max over seeds."""
    values = [float(v) for v in values]
    return dict(mean=statistics.fmean(values), std=statistics.stdev(values) if len(values) > 1 else 0.0,
                min=min(values), max=max(values), n=len(values))


def compare(gcp: Sequence[float], twin: Sequence[float], better: str = 'higher') -> Dict:
    """Paired comparison over seeds: both models' spread, the difference's mean and 95 % interval, a verdict.

    `better` ('higher' or 'lower') only words the verdict: 'GCP better', 'GCP worse', 'within spread',
    'one seed: no spread', or NOT_ENOUGH_SEEDS for fewer than MIN_SEEDS seeds or differences without
    spread (whose interval, of width zero, is NaN).
    """
    if len(gcp) != len(twin) or not gcp:
        raise ValueError(f'need the same number (>= 1) of seeds for both models, got {len(gcp)} and {len(twin)}')
    diffs = [g - t for g, t in zip(gcp, twin)]
    diff = describe(diffs)
    if len(diffs) == 1:
        half, verdict = math.nan, 'one seed: no spread'
    elif diff['std'] <= 1e-9 * max(1.0, *map(abs, diffs)):  # equal up to rounding
        half, verdict = math.nan, NOT_ENOUGH_SEEDS
    else:
        half = _t95(len(diffs) - 1) * diff['std'] / math.sqrt(len(diffs))
        if len(diffs) < MIN_SEEDS:
            verdict = NOT_ENOUGH_SEEDS
        elif abs(diff['mean']) <= half:
            verdict = 'within spread'
        else:
            verdict = 'GCP better' if (diff['mean'] > 0) == (better == 'higher') else 'GCP worse'
    return dict(gcp=describe(gcp), twin=describe(twin), diff=dict(diff, ci95=half), better=better, verdict=verdict,
                per_seed=dict(gcp=list(map(float, gcp)), twin=list(map(float, twin))))
