"""Loss landscape and gradient predictiveness along the gradient (Santurkar et al., NeurIPS 2018, sec. 3.1).

The protocol of the GCP optimization papers (Wang et al., CVPR 2020 and TPAMI 2023): at a training
step, split the network at a point, take the loss L(y) of the activation y there and its gradient
g = dL/dy, then for step sizes eta_i record

* the loss L(y + eta_i g)                        (its spread over i: the Lipschitzness band),
* the gradient change ||dL/dy(y + eta_i g) - g||  (the predictiveness band),
* the effective beta-smoothness max_i ||dL/dy(y + eta_i g) - g|| / (eta_i ||g||).

The weights do not move; the probe runs on a copy in the training mode of the step (BatchNorm batch
statistics) whose running statistics are thrown away, and every evaluation replays the same random
state (DropCov's channel dropout), so the probe neither changes training nor adds noise of its own.
`probe_parameters` is the parameter-space variant: the weights move along their gradient. See
docs/analysis.md, "Landscape probe".
"""
import copy
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

__all__ = ['STEM', 'LineProbe', 'probe_activations', 'probe_parameters', 'resolve_split', 'split_points',
           'step_sizes']

STEM = 'stem'  # the input of the model's first stage (the original's split, after ResNet's max-pool)
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

    def to_dict(self) -> Dict:
        return dict(asdict(self), beta=self.beta)


def step_sizes(start: float = 0.1, stop: float = 75.0, num: int = 50) -> List[float]:
    """`num` step sizes spaced linearly from `start` to `stop` (the original: 50 from 0.1 to 75)."""
    if num < 1:
        raise ValueError(f'the step range is empty: {num} step sizes')
    if not 0 < start <= stop:
        raise ValueError(f'the step range must satisfy 0 < start <= stop, got {start:g} to {stop:g}')
    if num == 1:
        return [float(start)]
    return [start + i * (stop - start) / (num - 1) for i in range(num)]


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
    model = copy.deepcopy(model)
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
    model = copy.deepcopy(model)
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
