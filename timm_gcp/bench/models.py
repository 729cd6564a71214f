"""`timm-gcp bench`: GCP models against their average-pooling twins from timm, in one process.

For each model: inference and training-step throughput, peak training memory and forward FLOPs,
and how the time splits between the backbone (`forward_features`) and the head (`forward_head`);
with `--probe`, what a probe step (the trunk frozen, the head trained) costs against a full training step.
A GCP model's baseline is timm's plain model with the same trunk (`resnet50_isqrt_d256` ->
`resnet50`, `deit_small_patch16_224_isqrt` -> `deit_small_patch16_224`), created and timed in the
same process. Each operation (inference, training step, backbone and head parts) is timed in
interleaved rounds, each round timing every model once in turn, and the fastest round is kept, so
a shared, noisy machine still gives fair ratios.
"""
import argparse
import copy
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import timm
from timm.utils import ParseKwargs

from .._errors import UsageError, check_model_kwargs, usage_errors
from ..models.registry import baseline_name, is_gcp_model, missing_backbone
from ..training.finetune import freeze_trunk
from ..measure import (
    MetaBuildError, MetaInputError, build_on_meta, count_flops, device_problem, run_on_meta, saved_tensor_bytes,
)

DEFAULT_MODELS = ('resnet50', 'resnet50_isqrt', 'resnet50_isqrt_d256', 'resnet50_dropcov')
AMP_DTYPES = {'float32': None, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
TIMINGS = ('infer', 'train', 'backbone_fwd', 'head_fwd', 'backbone_train', 'head_train')
PROBE = 'probe'  # timed with --probe: a training step of a copy of the model whose trunk is frozen

Features = Any  # a tensor, or the list of tensors a ViT's forward_features returns


def _tensors(x: Features) -> List[torch.Tensor]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _like(x: Features, fn: Callable[[torch.Tensor], torch.Tensor]) -> Features:
    return [fn(t) for t in x] if isinstance(x, (list, tuple)) else fn(x)


def head_graph_breaks(model: nn.Module, features: Features) -> int:
    """Graph breaks that torch.compile (dynamo) hits in `model.forward_head`, traced in training mode."""
    import torch._dynamo
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model.forward_head)(features)
    torch._dynamo.reset()
    return explanation.graph_break_count


def head_error(model: nn.Module, features: Features, autocast: Callable[[], ContextManager]) -> float:
    """Relative (Frobenius) error of the eval-mode head's logits under the run's precision, against float64.

    The head gets the same features in both runs, so this isolates what the run's precision settings
    (AMP dtype, TF32 matrix products) do to the head alone.
    """
    model.eval()
    reference_model = copy.deepcopy(model).double()
    with torch.no_grad():
        reference = reference_model.forward_head(_like(features, lambda t: t.double()))
        with autocast():
            logits = model.forward_head(features)
    return ((logits.double() - reference).norm() / reference.norm()).item()


@dataclass
class Result:
    """What one model measured; times are the fastest round, in ms per batch."""
    name: str
    baseline: Optional[str]
    params: int
    flops: int
    head_flops: int
    train_memory: int
    head_error: float
    times: Dict[str, float] = field(default_factory=dict)
    head_graph_breaks: Optional[int] = None
    probe_params: Optional[int] = None
    probe_memory: Optional[int] = None


def create_at_size(name: str, img_size: int, build: Optional[Callable[..., nn.Module]] = None,
                   **kwargs: Any) -> nn.Module:
    """`build(name, **kwargs)` (default `timm.create_model`), rebuilt with `img_size` for a fixed-input-size
    model (a ViT's patch grid) built for another size."""
    build = build or timm.create_model
    model = build(name, **kwargs)
    cfg = model.pretrained_cfg
    if cfg.get('fixed_input_size') and tuple(cfg['input_size'][1:]) != (img_size, img_size):
        model = build(name, img_size=img_size, **kwargs)
    return model


class ModelBench:
    """One model with its input, labels and optimizer, and a closure per timed operation."""

    def __init__(self, name: str, args: argparse.Namespace, device: torch.device, **kwargs: Any) -> None:
        """Create the model (`kwargs` to timm.create_model), count its FLOPs and its head's graph breaks (compile)."""
        self.name = name
        self.device = device
        self.amp_dtype = AMP_DTYPES[args.amp_dtype]
        memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.model = create_at_size(name, args.img_size, **kwargs).to(device=device, memory_format=memory_format)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g)
        self.x = self.x.to(device).contiguous(memory_format=memory_format)
        self.target = torch.randint(0, self.model.num_classes, (args.batch_size,), generator=g).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        self.probe_model = self.probe_optimizer = None
        self.probe_memory = None
        if args.probe:
            # a copy: freeze_trunk keeps its trunk in eval mode for good; its head is the GCP head, or the
            # classifier of a timm baseline (timm's linear probe)
            self.probe_model = copy.deepcopy(self.model)
            freeze_trunk(self.probe_model)
            trained = [p for p in self.probe_model.parameters() if p.requires_grad]
            self.probe_optimizer = torch.optim.SGD(trained, lr=1e-4, momentum=0.9)
        self.timings = TIMINGS + ((PROBE,) if args.probe else ())

        self.params = sum(p.numel() for p in self.model.parameters())
        self.model.eval()
        self.flops = count_flops(self.model, self.x[:1])
        with torch.no_grad(), self._autocast():
            self.features = self.model.forward_features(self.x)
        self.features_grad = _like(self.features, lambda t: torch.randn_like(t) * 1e-3)
        # counted in float32 like the whole model's: outside autocast, the head cannot take AMP features
        self.head_flops = count_flops(self.model.forward_head, _like(self.features, lambda t: t[:1].float()))
        self.head_error = head_error(self.model, self.features, self._autocast)
        self.head_graph_breaks = None
        if args.compile:
            self.model.train()
            with self._autocast():
                self.head_graph_breaks = head_graph_breaks(self.model, self.features)
        self.train_memory = 0

    def prepare(self, compile_backend: Optional[str], warmup: int) -> None:
        """Compile with `compile_backend` (None: eager), warm up and measure the training memory.

        Call after every model is created.
        """
        if compile_backend:
            # the two parts compile apart, so the split timings run the same graphs as the whole model
            for model in filter(None, (self.model, self.probe_model)):
                model.forward_features = torch.compile(model.forward_features, backend=compile_backend)
                model.forward_head = torch.compile(model.forward_head, backend=compile_backend)
        self.train_memory = self._step_memory(self.model, self.optimizer, self.train, warmup)
        if self.probe_model is not None:
            self.probe_memory = self._step_memory(self.probe_model, self.probe_optimizer, self.probe, warmup)
        for kind in self.timings:
            getattr(self, kind)()

    def _autocast(self) -> ContextManager:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _step_memory(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: Callable[[], None],
                     warmup: int) -> int:
        """Peak memory in bytes of a training `step` of `model` with `optimizer` (see `memory_method`); runs the
        warm-up steps."""
        params = list(model.parameters())
        weight_bytes = sum(t.numel() * t.element_size() for t in (*params, *model.buffers()))
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            for _ in range(max(warmup, 2)):  # from the second step on, the momentum is held as well
                step()
            torch.cuda.synchronize(self.device)
            return weight_bytes + torch.cuda.max_memory_allocated(self.device) - before
        for _ in range(warmup):
            step()
        momentum_bytes = sum(p.numel() * p.element_size() for group in optimizer.param_groups for p in group['params'])
        return weight_bytes + momentum_bytes + saved_tensor_bytes(lambda: self._loss(model), exclude=params)

    def _loss(self, model: nn.Module) -> torch.Tensor:
        model.train()
        with self._autocast():
            return F.cross_entropy(model(self.x), self.target)

    def infer(self) -> None:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            self.model(self.x)

    def train(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._loss(self.model).backward()
        self.optimizer.step()

    def probe(self) -> None:
        """A training step of the copy whose trunk is frozen: the trunk's forward, the head's forward and backward."""
        self.probe_optimizer.zero_grad(set_to_none=True)
        self._loss(self.probe_model).backward()
        self.probe_optimizer.step()

    def backbone_fwd(self) -> None:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            self.model.forward_features(self.x)

    def head_fwd(self) -> None:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            self.model.forward_head(self.features)

    def backbone_train(self) -> None:
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        with self._autocast():
            features = self.model.forward_features(self.x)
        torch.autograd.backward(_tensors(features), _tensors(self.features_grad))

    def head_train(self) -> None:
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        features = _like(self.features, lambda t: t.detach().requires_grad_(True))
        with self._autocast():
            loss = F.cross_entropy(self.model.forward_head(features), self.target)
        loss.backward()

    def result(self, baseline: Optional[str]) -> Result:
        probe_params = None if self.probe_optimizer is None else sum(
            p.numel() for group in self.probe_optimizer.param_groups for p in group['params'])
        return Result(
            self.name, baseline, self.params, self.flops, self.head_flops, self.train_memory, self.head_error,
            head_graph_breaks=self.head_graph_breaks, probe_params=probe_params, probe_memory=self.probe_memory,
        )


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], None], iters: int, device: torch.device) -> float:
    """Seconds per call of `fn`, over `iters` calls, with the device idle before and after."""
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _synchronize(device)
    return (time.perf_counter() - start) / iters


def memory_method(device: torch.device) -> str:
    """How `train mem` is measured on `device`."""
    if device.type == 'cuda':
        return 'weights + the CUDA max_memory_allocated increase over two training steps'
    return 'weights + SGD momentum + tensors saved for backward (saved_tensors_hooks; no grads, no workspace)'


def check_args(args: argparse.Namespace) -> torch.device:
    """The device; UsageError naming the first bad option, every model built on the meta device, before any work."""
    loaded = [name for name in args.models if name.startswith(('hf-hub:', 'hf_hub:', 'local-dir:'))]
    if loaded:
        raise UsageError(f"{loaded[0]}: bench times registered model names with random weights; give the "
                         f"architecture (config.json's 'architecture') and its settings with --model-kwargs")
    unknown = [name for name in args.models if not timm.is_model(name)]
    if unknown:
        raise UsageError(f'unknown model(s): {", ".join(map(repr, unknown))} '
                         f'(not registered in timm; `timm.list_models()` lists the names)')
    with usage_errors(RuntimeError, prefix='--device: '):
        problem = device_problem(args.device)
    if problem:
        raise UsageError(f'--device is {args.device!r}, but {problem}')
    device = torch.device(args.device)
    if args.tf32 and device.type != 'cuda':
        raise UsageError(f'--tf32 needs a CUDA device, not {args.device!r}')
    for name in ('batch_size', 'img_size', 'rounds', 'iters'):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.threads < 0 or args.warmup < 0:
        raise UsageError(f'--threads and --warmup must be at least 0, got {args.threads} and {args.warmup}')
    if args.compile and args.compile not in torch.compiler.list_backends(exclude_tags=()):
        raise UsageError(f"--compile '{args.compile}': not a torch.compile backend; the backends: "
                         f"{', '.join(torch.compiler.list_backends())}")
    if args.json not in (None, '-') and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise UsageError(f"--json '{args.json}': its folder does not exist")
    if args.json not in (None, '-') and os.path.isdir(args.json):
        raise UsageError(f"--json '{args.json}': is a folder; give the path of the JSON file to write")
    check_model_kwargs(args.model_kwargs)
    for name in args.models:
        problem = missing_backbone(name, args.model_kwargs,
                                   ' (e.g. backbone=convnext_tiny, then timed against convnext_tiny)')
        if problem:
            raise UsageError(f'{name}: {problem}')
    size = (3, args.img_size, args.img_size)
    # the models named first: a generic model's error names a bad backbone= before its baseline would
    for name in sorted(bench_names(args), key=lambda n: n not in args.models):
        with usage_errors(MetaBuildError, prefix=f'{name}: '):
            model = create_at_size(name, args.img_size, build_on_meta, **_kwargs_of(name, args.model_kwargs))
        if not model.num_classes:
            raise UsageError(f'{name} has no classifier (num_classes=0): bench times a training step on its '
                             f'logits; leave num_classes out of --model-kwargs')
        try:
            run_on_meta(model, size)
        except MetaInputError as e:
            raise UsageError(f"{name} cannot take {'x'.join(map(str, size))} inputs (--img-size {args.img_size}): "
                             f'{e}') from e
    return device


def _kwargs_of(name: str, model_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The `--model-kwargs` a model is built with: a GCP model's; none for its timm baseline."""
    return dict(model_kwargs or {}) if is_gcp_model(name) else {}


def bench_names(args: argparse.Namespace) -> Dict[str, Optional[str]]:
    """Every model to time, in table order (a baseline before its GCP model), mapped to its baseline (None: none)."""
    names: Dict[str, Optional[str]] = {}
    for name in args.models:
        # a generic GCP model's twin is its backbone with timm's own head
        backbone = (args.model_kwargs or {}).get('backbone') if is_gcp_model(name) else None
        base = backbone or baseline_name(name)
        if base:
            names.setdefault(base, None)
        names[name] = base
    return names


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def benchmark(args: argparse.Namespace) -> List[Result]:
    """Measure every model of `args.models` and its baseline; Results in table order (baseline first)."""
    device = torch.device(args.device)
    baselines = bench_names(args)
    names = list(baselines)
    _log(f'bench: {len(names)} model(s) on {device}: {", ".join(names)}')
    benches = {}
    for i, name in enumerate(names):
        counts = 'FLOPs, head error' + (', graph breaks' if args.compile else '')
        _log(f'[{i + 1}/{len(names)}] creating {name} ({counts}) ...')
        start = time.perf_counter()
        benches[name] = ModelBench(name, args, device, **_kwargs_of(name, args.model_kwargs))
        _log(f'[{i + 1}/{len(names)}] created {name}: {benches[name].params / 1e6:.2f} M parameters, '
             f'{benches[name].flops / 1e9:.2f} GFLOPs per image ({time.perf_counter() - start:.1f} s)')
    for i, (name, bench) in enumerate(benches.items()):
        _log(f'[{i + 1}/{len(names)}] warming up {name}{" (compiling)" if args.compile else ""}: '
             f'{args.warmup} training step(s) and one call of each timed operation ...')
        start = time.perf_counter()
        bench.prepare(args.compile, args.warmup)
        _log(f'[{i + 1}/{len(names)}] warmed up {name} ({time.perf_counter() - start:.1f} s)')

    timings = benches[names[0]].timings
    best = {name: {kind: math.inf for kind in timings} for name in names}
    start = time.perf_counter()
    for kind in timings:
        # one operation at a time, so a round is short and a quiet spell of a shared machine covers whole rounds
        for _ in range(args.rounds):
            for name, bench in benches.items():
                best[name][kind] = min(best[name][kind], _time(getattr(bench, kind), args.iters, device))
        _log(f'timed {kind}: {args.rounds} rounds ({time.perf_counter() - start:.0f} s)')

    results = []
    for name, bench in benches.items():
        result = bench.result(baselines.get(name))
        result.times = {kind: t * 1e3 for kind, t in best[name].items()}
        results.append(result)
    return results


def _ratio(value: float, base: Optional[float]) -> Optional[float]:
    return None if base is None else value / base


def summarize(results: Sequence[Result], batch_size: int) -> List[Dict[str, Any]]:
    """Per model: the raw measurements, throughputs, shares of the head and ratios to the baseline."""
    by_name = {r.name: r for r in results}
    rows = []
    for r in results:
        t = r.times
        base = by_name.get(r.baseline) if r.baseline else None
        row = asdict(r)
        row.update(
            params_m=r.params / 1e6,
            gflops=r.flops / 1e9,
            head_gflops=r.head_flops / 1e9,
            train_memory_mib=r.train_memory / 2 ** 20,
            infer_img_s=batch_size / t['infer'] * 1e3,
            train_img_s=batch_size / t['train'] * 1e3,
            head_share_infer=t['head_fwd'] / t['infer'],
            head_share_train=t['head_train'] / t['train'],
            ratios=dict(
                params=_ratio(r.params, base and base.params),
                flops=_ratio(r.flops, base and base.flops),
                infer=_ratio(t['infer'], base and base.times['infer']),
                train=_ratio(t['train'], base and base.times['train']),
                train_memory=_ratio(r.train_memory, base and base.train_memory),
            ),
        )
        if PROBE in t:
            row.update(probe_img_s=batch_size / t[PROBE] * 1e3, probe_memory_mib=r.probe_memory / 2 ** 20,
                       probe_time_share=t[PROBE] / t['train'], probe_memory_share=r.probe_memory / r.train_memory)
        rows.append(row)
    return rows


def _fmt_ratio(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}x'


def format_tables(rows: Sequence[Dict[str, Any]], header: str) -> str:
    """The throughput table (ratios are costs: GCP model / baseline) and the backbone / head split."""
    lines = [
        header,
        '',
        '| model | baseline | params (M) | GFLOPs | infer (img/s) | train (img/s) | train mem (MiB) '
        '| FLOPs ratio | infer time ratio | train time ratio | train mem ratio |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        ratios = row['ratios']
        lines.append(
            f"| {row['name']} | {row['baseline'] or '-'} | {row['params_m']:.2f} | {row['gflops']:.2f} "
            f"| {row['infer_img_s']:.1f} | {row['train_img_s']:.1f} | {row['train_memory_mib']:.0f} "
            f"| {_fmt_ratio(ratios['flops'])} | {_fmt_ratio(ratios['infer'])} | {_fmt_ratio(ratios['train'])} "
            f"| {_fmt_ratio(ratios['train_memory'])} |")
    compiled = any(row['head_graph_breaks'] is not None for row in rows)
    lines += [
        '',
        '| model | head GFLOPs | backbone fwd (ms) | head fwd (ms) | head % of infer | backbone f+b (ms) '
        '| head f+b (ms) | head % of train step | head error vs float64 |'
        + (' head graph breaks |' if compiled else ''),
        '|---|---|---|---|---|---|---|---|---|' + ('---|' if compiled else ''),
    ]
    for row in rows:
        t = row['times']
        lines.append(
            f"| {row['name']} | {row['head_gflops']:.3f} | {t['backbone_fwd']:.1f} | {t['head_fwd']:.1f} "
            f"| {100 * row['head_share_infer']:.1f} % | {t['backbone_train']:.1f} | {t['head_train']:.1f} "
            f"| {100 * row['head_share_train']:.1f} % | {row['head_error']:.1e} |"
            + (f" {row['head_graph_breaks']} |" if compiled else ''))
    if all(PROBE in row['times'] for row in rows):
        lines += [
            '',
            '| model | trained params, probe | train step (ms) | probe step (ms) | probe / train time '
            '| train mem (MiB) | probe mem (MiB) | probe / train mem |',
            '|---|---|---|---|---|---|---|---|',
        ]
        for row in rows:
            t = row['times']
            lines.append(
                f"| {row['name']} | {row['probe_params']:,} | {t['train']:.1f} | {t[PROBE]:.1f} "
                f"| {100 * row['probe_time_share']:.1f} % | {row['train_memory_mib']:.0f} "
                f"| {row['probe_memory_mib']:.0f} | {100 * row['probe_memory_share']:.1f} % |")
    return '\n'.join(lines)


def describe(args: argparse.Namespace) -> str:
    """One line with everything the numbers depend on."""
    device = torch.device(args.device)
    if device.type == 'cuda':
        where = torch.cuda.get_device_name(device)
    else:
        where = f'CPU, {torch.get_num_threads()} threads'
    model_args = ', '.join(f'{k}={v}' for k, v in args.model_kwargs.items())
    return (
        f'torch {torch.__version__}, timm {timm.__version__}, {where}; batch {args.batch_size}, '
        f'{args.img_size} px, {"AMP " + args.amp_dtype if AMP_DTYPES[args.amp_dtype] else "float32"}'
        f'{", channels_last" if args.channels_last else ""}'
        f'{f", torch.compile ({args.compile})" if args.compile else ""}'
        f'{", TF32 matmul" if args.tf32 else ""}'
        f'{"; GCP model args " + model_args if model_args else ""}'
        f'; fastest of {args.rounds} interleaved rounds of '
        f'{args.iters} iteration(s) per operation; train step = forward + cross-entropy + backward + SGD step; '
        f'train mem = {memory_method(device)}; FLOPs = forward, torch.utils.flop_counter, per image; '
        + ('probe step = the same with the trunk frozen (freeze_trunk: eval mode, no gradient) and the head alone '
           "trained (a timm model's classifier: its linear probe), its memory measured alike; " if args.probe else '')
        + 'head error = relative error of the eval-mode head logits against the head run in float64'
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS), metavar='NAME',
                        help='timm model names; each GCP model is measured against its timm baseline')
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs, metavar='KEY=VALUE',
                        help="timm.create_model arguments of the GCP models, e.g. backbone=convnext_tiny for gcp_isqrt "
                             "(its baseline is then the backbone)")
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument('--amp-dtype', default='float32', choices=tuple(AMP_DTYPES),
                        help='autocast dtype (float32: no autocast); the GCP matrix work stays float32')
    parser.add_argument('--channels-last', action='store_true', help='channels_last model and input')
    parser.add_argument('--compile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                        help='torch.compile forward_features and forward_head with BACKEND (default: inductor) '
                             'and count the graph breaks in the head')
    parser.add_argument('--tf32', action='store_true', help='allow TF32 for float32 matrix products on CUDA')
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds (fastest kept)')
    parser.add_argument('--iters', type=int, default=1, help='iterations per model and operation in a round')
    parser.add_argument('--warmup', type=int, default=1, help='untimed training steps per model first')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    parser.add_argument('--probe', action='store_true',
                        help="also time a probe step, the trunk frozen and the head trained (a timm baseline's "
                             'classifier: its linear probe), with its memory, against the full training step')
    parser.add_argument('--json', nargs='?', const='-', default=None, metavar='PATH',
                        help="write the results as JSON to PATH; '-' or no PATH: print JSON instead of the tables")


def run(args: argparse.Namespace) -> int:
    device = check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        # the public switch keeps torch's legacy and new TF32 flags consistent (mixing them raises)
        torch.set_float32_matmul_precision('high' if args.tf32 else 'highest')
    elif args.amp_dtype == 'float16':
        _log('warning: float16 on a CPU runs its matrix products far slower than float32 (use bfloat16)')

    rows = summarize(benchmark(args), args.batch_size)
    header = describe(args)
    if args.json:
        text = json.dumps(dict(config=dict(vars(args), description=header), models=rows), indent=2)
        if args.json == '-':
            print(text)
            return 0
        with open(args.json, 'w') as f:
            f.write(text + '\n')
    print(format_tables(rows, header))
    return 0
