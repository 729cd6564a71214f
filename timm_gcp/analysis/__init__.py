"""The optimization findings of the GCP papers as measurements on any two timm models.

`landscape` (loss landscape, gradient predictiveness, beta-smoothness along the gradient),
`lr_ladder` (accuracy under a ladder of learning rates with a fast decay), `corruptions` (common
corruptions and the mean corruption error), `spread` (comparisons over seeds), `plots` and `run`
(the `timm-gcp analyze` command). See docs/analysis.md.
"""
from .corruptions import (
    CORRUPTIONS, SEVERITIES, check_corruptions, corruption, corruption_errors, mean_corruption_error,
)
from .landscape import (
    STEM, LineProbe, default_step_range, probe_activations, probe_parameters, resolve_split, split_points, step_sizes,
)
from .lr_ladder import ladder_optim, train_ladder
from .spread import compare, describe, holm, t_quantile

__all__ = [
    'CORRUPTIONS', 'SEVERITIES', 'check_corruptions', 'corruption', 'corruption_errors', 'mean_corruption_error',
    'STEM', 'LineProbe', 'default_step_range', 'probe_activations', 'probe_parameters', 'resolve_split',
    'split_points', 'step_sizes', 'ladder_optim', 'train_ladder', 'compare', 'describe', 'holm', 't_quantile',
]
