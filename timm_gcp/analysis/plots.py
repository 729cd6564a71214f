"""PNG figures in the style of the papers': bands over training steps, both models on the same axes.

Every panel takes the per-seed results (`timm_gcp.analysis.run.analyze_seed`'s dicts) and draws each
model's mean over seeds with its min-max over seeds shaded, so one seed draws a line and several show
their spread. The two band panels instead shade, per probe step, the band between the smallest and
the largest value over the step sizes (averaged over seeds), as the papers' figures do. Each panel's
title says which of the two its shading is.
"""
from typing import Callable, Dict, List, Sequence

from .._extras import require
from .corruptions import SEVERITIES

__all__ = ['draw_accuracy', 'draw_band', 'draw_corruptions', 'draw_ladder', 'draw_loss', 'draw_probe_measure',
           'figure', 'plot_analysis', 'plot_parameter_probes']

MODELS = (('gcp', 'C0'), ('twin', 'C1'))
OVER_SEEDS = 'shaded: min-max over seeds'
OVER_STEPS = 'shaded: min-max over step sizes, mean over seeds'
# per-probe measures drawn as lines over training: (axis label, title)
PROBE_MEASURES = {
    'grad_norm': ('||g|| at the split', 'gradient norm (raw scale)'),
    'loss_band_rel': ('band / ((eta_max - eta_min) ||g||^2)', 'loss band / first-order prediction'),
    'grad_change_rel': ('max ||g(eta) - g|| / ||g||', 'gradient change / ||g||'),
    'beta': ('max ||g(eta) - g|| / (eta ||g||)', 'effective beta-smoothness'),
}


def figure(rows: int, cols: int):
    """A matplotlib Figure (no pyplot state) with its grid of axes."""
    fig = require('matplotlib.figure', 'demo').Figure(figsize=(4.2 * cols, 3.3 * rows))
    return fig, fig.subplots(rows, cols, squeeze=False)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _spread(ax, x: Sequence[float], per_seed: List[Sequence[float]], color: str, label: str, style: str = 'o-') -> None:
    """Mean over seeds as a line, min-max over seeds shaded."""
    columns = list(zip(*per_seed))
    ax.plot(x, [_mean(c) for c in columns], style, color=color, label=label, markersize=3)
    if len(per_seed) > 1:
        ax.fill_between(x, [min(c) for c in columns], [max(c) for c in columns], color=color, alpha=0.2, lw=0)


def _finish(ax, xlabel: str, ylabel: str, title: str, ticks: Sequence[float] = (), shaded: str = OVER_SEEDS) -> None:
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(f'{title}\n({shaded})', fontsize=9)
    if ticks:
        ax.set_xticks(ticks, [f'{t:g}' for t in ticks])
        ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_loss(ax, seeds: List[Dict], names: Sequence[str]) -> None:
    """Training (dashed) and test loss per epoch."""
    for (key, color), name in zip(MODELS, names):
        epochs = [h['epoch'] for h in seeds[0]['history']]
        _spread(ax, epochs, [[h[key]['train_loss'] for h in s['history']] for s in seeds], color, f'{name} train', '--')
        _spread(ax, epochs, [[h[key]['test_loss'] for h in s['history']] for s in seeds], color, f'{name} test')
    _finish(ax, 'epoch', 'cross-entropy', 'loss', epochs)


def draw_accuracy(ax, seeds: List[Dict], names: Sequence[str]) -> None:
    """Test accuracy per epoch."""
    for (key, color), name in zip(MODELS, names):
        epochs = [h['epoch'] for h in seeds[0]['history']]
        _spread(ax, epochs, [[h[key]['test_acc'] for h in s['history']] for s in seeds], color, name)
    _finish(ax, 'epoch', '%', 'test accuracy', epochs)


def draw_band(ax, seeds: List[Dict], names: Sequence[str], quantity: str, probes: str = 'probes') -> None:
    """Per probe step, the band of `quantity` ('loss' or 'grad_change') over the step sizes (raw scale)."""
    for (key, color), name in zip(MODELS, names):
        per_seed = [s[probes][key] for s in seeds]
        steps = [p['step'] for p in per_seed[0]]
        low = [_mean([min(run[i][quantity]) for run in per_seed]) for i in range(len(steps))]
        high = [_mean([max(run[i][quantity]) for run in per_seed]) for i in range(len(steps))]
        ax.fill_between(steps, low, high, color=color, alpha=0.3, lw=0, label=f'{name}: min-max over step sizes')
        ax.plot(steps, high, color=color, lw=0.8)
        ax.plot(steps, low, color=color, lw=0.8)
    titles = dict(loss='loss landscape', grad_change='gradient predictiveness')
    ylabels = dict(loss='loss along the gradient', grad_change='||g(eta) - g||')
    space = '' if probes == 'probes' else ' (weights)'
    _finish(ax, 'training step', ylabels[quantity], f'{titles[quantity]}{space}, raw scale', shaded=OVER_STEPS)


def draw_probe_measure(ax, seeds: List[Dict], names: Sequence[str], measure: str, probes: str = 'probes') -> None:
    """One per-probe measure of `PROBE_MEASURES` per probe step (the scale-free ones and the gradient's norm)."""
    for (key, color), name in zip(MODELS, names):
        steps = [p['step'] for p in seeds[0][probes][key]]
        _spread(ax, steps, [[p[measure] for p in s[probes][key]] for s in seeds], color, name)
    ylabel, title = PROBE_MEASURES[measure]
    _finish(ax, 'training step', ylabel, title + ('' if probes == 'probes' else ' (weights)'))


def draw_ladder(ax, seeds: List[Dict], names: Sequence[str]) -> None:
    """Final test accuracy at each learning rate of the ladder (log axis)."""
    for (key, color), name in zip(MODELS, names):
        lrs = [r['lr'] for r in seeds[0]['ladder']]
        _spread(ax, lrs, [[r['epochs'][-1][key]['test_acc'] for r in s['ladder']] for s in seeds], color, name)
        if 'ladder_reference' in seeds[0]:
            ax.axhline(_mean([s['ladder_reference']['test_acc'][key] for s in seeds]), color=color, ls=':', lw=1,
                       label=f'{name}: reference (main run)')
    ax.set_xscale('log')
    epochs = len(seeds[0]['ladder'][0]['epochs'])
    _finish(ax, 'peak learning rate (SGD, poly decay)', '%', f'LR ladder: accuracy after {epochs} epoch(s)', lrs)


def draw_corruptions(ax, seeds: List[Dict], names: Sequence[str]) -> None:
    """Test accuracy against severity (0: clean), averaged over the corruptions."""
    for (key, color), name in zip(MODELS, names):
        per_seed = []
        for s in seeds:
            result = s['corruptions'][key]
            errors = list(result['errors'].values())
            per_seed.append([result['clean_acc']]
                            + [100 - _mean([e[i] for e in errors]) for i in range(len(SEVERITIES))])
        _spread(ax, [0, *SEVERITIES], per_seed, color, name)
    _finish(ax, 'severity (0: clean)', '%', 'accuracy under corruptions', [0, *SEVERITIES])


def plot_analysis(seeds: List[Dict], names: Sequence[str], path: str, title: str, top: Sequence[Callable]) -> None:
    """Three rows: the panels `top` (e.g. draw_accuracy, draw_ladder, draw_corruptions), then the probe's on
    the raw scale (both bands and the gradient's norm), then its scale-free measures, which the verdicts use."""
    fig, axes = figure(3, 3)
    for ax, draw in zip(axes[0], top):
        draw(ax, seeds, names)
    for ax in axes[0][len(top):]:
        ax.set_axis_off()
    _draw_probes(axes[1:], seeds, names, 'probes')
    _save(fig, title, path)


def _draw_probes(axes, seeds: List[Dict], names: Sequence[str], probes: str) -> None:
    """Two rows of probe panels: the raw bands and ||g|| over the scale-free measures."""
    draw_band(axes[0][0], seeds, names, 'loss', probes)
    draw_band(axes[0][1], seeds, names, 'grad_change', probes)
    for ax, measure in zip([axes[0][2], *axes[1]], PROBE_MEASURES):
        draw_probe_measure(ax, seeds, names, measure, probes)


def _save(fig, title: str, path: str) -> None:
    fig.suptitle(f'{title}\nlines: mean over seeds; each panel says what it shades', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_parameter_probes(seeds: List[Dict], names: Sequence[str], path: str, title: str) -> None:
    """The parameter-space variant's panels, apart from the activation probe's."""
    fig, axes = figure(2, 3)
    _draw_probes(axes, seeds, names, 'param_probes')
    _save(fig, title, path)
