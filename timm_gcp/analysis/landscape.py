"""Loss landscape and gradient predictiveness along the gradient (Santurkar et al., NeurIPS 2018, sec. 3.1).

The protocol of the GCP optimization papers (Wang et al., CVPR 2020 and TPAMI 2023): at a training
step, split the network at a point, take the loss L(y) of the activation y there and its gradient
g = dL/dy, then for step sizes eta_i record

* the loss L(y + eta_i g)                        (its spread over i: the Lipschitzness band),
* the gradient change ||dL/dy(y + eta_i g) - g||  (the predictiveness band),
* the effective beta-smoothness max_i ||dL/dy(y + eta_i g) - g|| / (eta_i ||g||).

Both bands grow with the gradient's size: to first order the loss moves by eta ||g||^2. So beside
the raw widths a probe gives them without that scale: the loss band over its first-order prediction
(max_i L - min_i L) / ((eta_max - eta_min) ||g||^2), and the largest gradient change over ||g||.

The weights do not move; the probe runs on a copy in training mode (BatchNorm batch statistics, as
the original, whatever mode the model is in) whose running statistics are thrown away, and every
evaluation replays the same random state (DropCov's channel dropout) and restores the caller's, so
the probe neither changes training nor adds noise of its own.
`probe_parameters` is the parameter-space variant: the weights move along their gradient. See
docs/analysis.md, "Landscape probe".
"""
import copy
import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

__all__ = ['STEM', 'STEP_RANGES', 'LineProbe', 'default_step_range', 'probe_activations', 'probe_parameters',
           'resolve_split', 'split_points', 'step_sizes']

STEM = 'stem'  # the input of the model's first stage (the original's split, after ResNet's max-pool)
# the original's step ranges along the activation gradient by trunk: its ResNet's, and its MobileNetV2's
STEP_RANGES = {'resnet': (0.1, 75.0), 'mobilenetv2': (0.045, 1.5)}
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LineProbe:
    """What one probe records: the step sizes, and per step size the loss and the gradient change."""
    step: int
    etas: List[float]
    loss: List[float]
    grad_change: List[float]
    loss0: float
    grad_norm: float

    @property
    def beta(self) -> float:
        """Effective beta-smoothness: the largest gradient change per distance moved."""
        if self.grad_norm == 0:
            return 0.0
        return max(c / (e * self.grad_norm) for c, e in zip(self.grad_change, self.etas))

    @property
    def loss_band(self) -> float:
        """Width of the loss band: max - min of the losses over the step sizes."""
        return max(self.loss) - min(self.loss)

    @property
    def max_grad_change(self) -> float:
        """The largest gradient change over the step sizes."""
        return max(self.grad_change)

    @property
    def loss_band_rel(self) -> float:
        """The loss band over its first-order prediction (eta_max - eta_min) ||g||^2: 1 where the loss is linear
        along g, above 1 where it curves up, below where it flattens; NaN without a step range or a gradient."""
        first_order = (max(self.etas) - min(self.etas)) * self.grad_norm ** 2
        return self.loss_band / first_order if first_order > 0 else math.nan

    @property
    def grad_change_rel(self) -> float:
        """The largest gradient change over the gradient's norm ||g||; NaN without a gradient."""
        return self.max_grad_change / self.grad_norm if self.grad_norm > 0 else math.nan

    def to_dict(self) -> Dict:
        return dict(asdict(self), beta=self.beta, loss_band=self.loss_band, max_grad_change=self.max_grad_change,
                    loss_band_rel=self.loss_band_rel, grad_change_rel=self.grad_change_rel)


def step_sizes(start: float = 0.1, stop: float = 75.0, num: int = 50) -> List[float]:
    """`num` step sizes spaced linearly from `start` to `stop` (the original: 50 from 0.1 to 75)."""
    if num < 1:
        raise ValueError(f'the step range is empty: {num} step sizes')
    if not 0 < start <= stop:
        raise ValueError(f'the step range must satisfy 0 < start <= stop, got {start:g} to {stop:g}')
    if num == 1:
        return [float(start)]
    return [start + i * (stop - start) / (num - 1) for i in range(num)]


def default_step_range(arch: str) -> Tuple[float, float]:
    """The original's step range for a trunk of timm architecture `arch`: MobileNetV2's for `mobilenetv2_*`,
    else its ResNet's, which is also the range for every other trunk."""
    return STEP_RANGES['mobilenetv2'] if arch.startswith('mobilenetv2_') else STEP_RANGES['resnet']


def _first_stage(model: nn.Module) -> str:
    """The first module in the model's feature_info that holds parameters: its input is the stem's output."""
    modules = dict(model.named_modules())
    for info in model.feature_info:
        name = info['module']
        if name in modules and any(True for _ in modules[name].parameters()):
            return name
    raise ValueError(f'{type(model).__name__} lists no stage with parameters in its feature_info')


def split_points(model: nn.Module) -> List[str]:
    """Where `model` may be split: 'stem' and its feature_info stages (timm models), else any named submodule."""
    info = getattr(model, 'feature_info', None)
    if info:
        return [STEM] + [f['module'] for f in info]
    return [name for name, _ in model.named_modules() if name]


def resolve_split(model: nn.Module, point: str) -> Tuple[nn.Module, bool]:
    """The module to hook and whether its input (True) or output (False) is the split activation."""
    points = split_points(model)
    if point not in points:
        raise ValueError(f"unknown split point '{point}' for {type(model).__name__}; valid: {', '.join(points)}")
    if point == STEM and getattr(model, 'feature_info', None):
        return model.get_submodule(_first_stage(model)), True
    return model.get_submodule(point), False


def _training_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` in training mode (BatchNorm on the batch's statistics): the original's landscape model is
    never put in eval mode, and the copy's running statistics are thrown away with it."""
    return copy.deepcopy(model).train()


def _line_probe(evaluate: Callable[[Sequence[torch.Tensor]], Tuple[torch.Tensor, List[torch.Tensor]]],
                base: Sequence[torch.Tensor], etas: Sequence[float], step: int) -> LineProbe:
    """Loss and gradient change along the gradient from `base`; evaluate(point) -> (loss, gradient)."""
    loss0, grad = evaluate(base)
    grad = [g.detach() for g in grad]
    losses, changes = [], []
    for eta in etas:
        loss, grad_eta = evaluate([b + eta * g for b, g in zip(base, grad)])
        losses.append(loss.item())
        changes.append(torch.sqrt(sum(((ge - g) ** 2).sum() for ge, g in zip(grad_eta, grad))).item())
    grad_norm = torch.sqrt(sum((g ** 2).sum() for g in grad)).item()
    return LineProbe(step, [float(e) for e in etas], losses, changes, loss0.item(), grad_norm)


def probe_activations(
        model: nn.Module,
        point: str,
        x: torch.Tensor,
        target: torch.Tensor,
        loss_fn: LossFn,
        etas: Sequence[float],
        step: int = 0,
        seed: int = 0,
) -> LineProbe:
    """Move the activation at split `point` along its gradient (the original protocol); the weights stay."""
    model = _training_copy(model)
    module, at_input = resolve_split(model, point)
    state = {}

    def replace(y: torch.Tensor) -> torch.Tensor:
        if 'value' not in state:  # the capturing pass
            state['y'] = y.detach()
            return y
        state['leaf'] = state['value'].detach().requires_grad_()
        return state['leaf']

    if at_input:
        handle = module.register_forward_pre_hook(lambda m, args: (replace(args[0]),) + tuple(args[1:]))
    else:
        handle = module.register_forward_hook(lambda m, args, out: replace(out))

    def evaluate(point_value: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        state['value'] = point_value[0]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            loss = loss_fn(model(x), target)
        return loss, list(torch.autograd.grad(loss, state['leaf']))

    try:
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            model(x)
        return _line_probe(evaluate, [state['y']], etas, step)
    finally:
        handle.remove()


def probe_parameters(
        model: nn.Module,
        x: torch.Tensor,
        target: torch.Tensor,
        loss_fn: LossFn,
        etas: Sequence[float],
        step: int = 0,
        seed: int = 0,
) -> LineProbe:
    """Move the weights along their gradient (Santurkar et al.'s variant); the input stays."""
    model = _training_copy(model)
    params = [p for p in model.parameters() if p.requires_grad]
    base = [p.detach().clone() for p in params]

    def evaluate(point_value: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        with torch.no_grad():
            for p, v in zip(params, point_value):
                p.copy_(v)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            loss = loss_fn(model(x), target)
        return loss, list(torch.autograd.grad(loss, params))

    return _line_probe(evaluate, base, etas, step)
