"""`timm-gcp export-onnx`: a timm-gcp model to an ONNX file, checked against PyTorch with onnxruntime.

torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`) traces the model with
`torch.export` and translates each ATen op with onnxscript. The iSQRT, DropCov (at inference a
plain covariance) and token heads are matrix products and translate; MPN-COV's eigendecomposition
(`torch.linalg.eigh`) has no ONNX operator, so a model that computes one is refused after tracing,
before anything is written. The file is written to a temporary sibling, run with onnxruntime on the
CPU against the model's own logits, and renamed into place only if they agree.
"""
import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import timm
import torch
from timm.data import resolve_input_data_config
from timm.models import get_model_input_config
from timm.utils import ParseKwargs
from torch import nn

from .._errors import CommandError, UsageError, check_model_kwargs, path_problem, usage_errors
from .._extras import require
from ..checkpoints.train_run import (
    CheckpointError, read_checkpoint, read_training_run, trained_arch, trained_model_kwargs,
)
from ..measure import MetaBuildError, MetaInputError, build_on_meta, run_on_meta
from .folder import umask_mode

__all__ = ['EIGEN_OPS', 'OnnxExportError', 'OnnxReport', 'input_size', 'eigen_ops', 'export_onnx', 'trained_model',
           'add_arguments', 'run']

# ATen ops of an eigen- or singular value decomposition: ONNX has no operator for any of them
EIGEN_OPS = ('_linalg_eigh', 'linalg_eigh', 'linalg_eig', '_linalg_svd', 'linalg_svd', 'svd', 'symeig')


class OnnxExportError(CommandError, RuntimeError):
    """A model that cannot be exported or whose ONNX logits differ from PyTorch's; nothing was written."""


@dataclass
class OnnxReport:
    """What `export_onnx` wrote and how well onnxruntime reproduces the model."""
    path: Path
    input_size: Tuple[int, int, int]
    dynamic_batch: bool
    opset: int
    export_batch: int
    check_batch: int
    max_rel_error: float  # max |onnxruntime - torch| / max |torch| over the check batch's logits
    ops: List[str]  # the graph's operator types, domain-qualified outside the default ONNX domain

    def format(self) -> str:
        batch = f'dynamic (traced at {self.export_batch}, checked at {self.check_batch})' if self.dynamic_batch \
            else str(self.export_batch)
        return '\n'.join([
            f'wrote       {self.path} (opset {self.opset}, input {"x".join(map(str, self.input_size))}, batch {batch})',
            f'checked     onnxruntime (CPU) logits vs PyTorch: max relative error {self.max_rel_error:.2e}',
            f'operators   {", ".join(self.ops)}',
        ])


def input_size(model: nn.Module, img_size: Optional[int] = None) -> Tuple[int, int, int]:
    """C x H x W the model is exported at: `img_size` square, else its pretrained cfg's input size.

    A fixed-size model (a ViT) is resized to `img_size` with its own `set_input_size` (the position
    embedding is resampled), as timm's scripts do.
    """
    size = tuple(get_model_input_config(model)['input_size'])  # a ViT's current img_size, else its cfg's
    if img_size is None or tuple(size[1:]) == (img_size, img_size):
        return size
    if model.pretrained_cfg.get('fixed_input_size'):
        if not hasattr(model, 'set_input_size'):
            raise OnnxExportError(
                f'{type(model).__name__} takes {size[1]}x{size[2]} inputs only: build it for {img_size}x{img_size} '
                f'with the model argument img_size={img_size} (--model-kwargs img_size={img_size})')
        model.set_input_size(img_size=(img_size, img_size))
    return size[0], img_size, img_size


def eigen_ops(program: torch.export.ExportedProgram) -> List[str]:
    """The eigen- / singular value decompositions an exported program computes (ONNX has none)."""
    found = set()
    for module in program.graph_module.modules():  # higher-order ops (autocast regions) hold subgraphs
        if isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                if node.op == 'call_function' and getattr(node.target, '__name__', '').split('.')[0] in EIGEN_OPS:
                    found.add(str(node.target))
    return sorted(found)


def _first_line(error: Exception) -> str:
    return next(iter(str(error).splitlines()), type(error).__name__)


def _rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max().clamp_min(torch.finfo(ref.dtype).tiny)).item()


def _run_onnxruntime(ort, path: Path, x: torch.Tensor) -> torch.Tensor:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its graph optimizer warns about ops it cannot fold
    try:
        session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    except Exception as e:  # onnxruntime raises its own pybind error types
        raise OnnxExportError(f'onnxruntime cannot run the exported file: {e}') from e


def export_onnx(
        model: nn.Module,
        out: Union[str, Path],
        img_size: Optional[int] = None,
        dynamic_batch: bool = False,
        opset: Optional[int] = None,
        rtol: float = 1e-4,
        overwrite: bool = False,
        program: Optional[torch.export.ExportedProgram] = None,
) -> OnnxReport:
    """Export `model` in eval mode to the ONNX file `out` and check it with onnxruntime.

    Traced at batch 1, or at batch 2 with a dynamic batch dimension (torch.export specializes sizes
    0 and 1) and then checked at batch 3. Raises OnnxExportError, writing nothing, when the model
    computes an eigendecomposition, when the exporter fails, or when onnxruntime's logits are more
    than `rtol` (relative to the largest logit) from PyTorch's. `program`, a `torch.export` trace of
    `model` at that batch size (and dynamic batch dimension), saves tracing it again.
    """
    require('onnxscript', 'onnx')
    ort = require('onnxruntime', 'onnx')
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f'{out}: already exists')
    model = model.eval()
    size = input_size(model, img_size)
    export_batch, check_batch = (2, 3) if dynamic_batch else (1, 1)
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(export_batch, *size, generator=generator)
    dynamic_shapes = ({0: torch.export.Dim('batch', min=1)},) if dynamic_batch else None
    if program is None:
        try:
            program = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
        except Exception as e:  # torch.export raises its own error types for what it cannot trace
            raise OnnxExportError(f'torch.export cannot trace {type(model).__name__}: {_first_line(e)}') from e
    found = eigen_ops(program)
    if found:
        raise OnnxExportError(
            f'{type(model).__name__} computes an eigendecomposition ({", ".join(found)}), which ONNX has no '
            "operator for: MPN-COV (gcp_norm='mpn') cannot be exported; iSQRT (gcp_norm='isqrt') approximates "
            'the same square root with matrix products, and torch.export / TorchScript run MPN-COV as it is')
    try:
        onnx_program = torch.onnx.export(program, (example,), dynamo=True, opset_version=opset, verbose=False)
    except Exception as e:  # the exporter wraps every failure in its own error types
        raise OnnxExportError(f'the ONNX exporter failed: {_first_line(e)}') from e
    written = onnx_program.model.opset_imports['']
    if opset is not None and written != opset:  # the exporter keeps its own opset where it cannot convert
        raise OnnxExportError(f'the ONNX exporter cannot write opset {opset} (it converts from opset {written} '
                              f'and failed): pass --opset {written} or leave --opset out')

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{out.name}.', suffix='.partial', dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx_program.save(tmp, external_data=False)
        os.chmod(tmp, umask_mode(0o666))  # mkstemp's 0o600 would keep the file from a teammate or a server
        x = torch.randn(check_batch, *size, generator=generator)
        with torch.no_grad():
            ref = model(x)
        logits = _run_onnxruntime(ort, tmp, x)
        if logits.shape != ref.shape:
            raise OnnxExportError(
                f'onnxruntime gives logits of shape {tuple(logits.shape)}, PyTorch {tuple(ref.shape)}')
        error = _rel_error(logits, ref)
        if not error <= rtol:
            raise OnnxExportError(f'onnxruntime logits differ from PyTorch by {error:.2e} relative (limit {rtol:g})')
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    graph = onnx_program.model.graph
    ops = sorted({n.op_type if n.domain in ('', 'ai.onnx') else f'{n.domain}.{n.op_type}' for n in graph})
    return OnnxReport(
        path=out,
        input_size=size,
        dynamic_batch=dynamic_batch,
        opset=written,
        export_batch=export_batch,
        check_batch=check_batch,
        max_rel_error=error,
        ops=ops,
    )


def trained_model(
        checkpoint: Union[str, Path],
        model_name: Optional[str],
        model_kwargs: Dict[str, Any],
) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    """The model a checkpoint was trained as, read as `timm-gcp convert` reads it: name, settings, cfg overlay.

    The name is the checkpoint's 'arch' (checked against `model_name` when given), the settings add
    a train.py run's and the classifier's `num_classes` to `model_kwargs`, and the pretrained cfg
    overlay holds the run's input size, at which the ONNX graph is traced. Raises CheckpointError.
    """
    path = Path(checkpoint)
    obj, _ = read_checkpoint(path)
    name = trained_arch(path, obj, model_name, argument='the model argument')
    run = read_training_run(path, obj)
    # the entry timm's loader takes without EMA
    state_dict = next((obj[k] for k in ('state_dict', 'model') if isinstance(obj.get(k), dict)), obj) \
        if isinstance(obj, dict) else {}
    data_config = run.data_config() if run is not None else {}
    try:
        kwargs = trained_model_kwargs(name, state_dict, run, model_kwargs)
        if not {'img_size', 'input_size'} & set(data_config):
            return name, kwargs, {}
        probe = timm.create_model(name, device='meta', exportable=True, **kwargs)
        return name, kwargs, {'input_size': resolve_input_data_config(probe, args=data_config)['input_size']}
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f'{path}: cannot build {name} as it was trained: {e}') from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('model', nargs='?', default=None,
                        help="registered model, optionally with a tag ('resnet50_isqrt', 'arch.tag', "
                             "'local-dir:FOLDER', 'hf-hub:org/repo'); default: the --checkpoint's 'arch'")
    parser.add_argument('--out', required=True, help='the ONNX file to write')
    parser.add_argument('--img-size', type=int, default=None,
                        help="square input size (default: the model's pretrained cfg; a ViT is resized to it)")
    parser.add_argument('--dynamic-batch', action='store_true', help='a dynamic batch dimension (default: batch 1)')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--checkpoint', default='',
                         help="weights to load (a state dict or a train.py checkpoint, whose 'arch', num_classes, "
                              'model settings and input size are used)')
    weights.add_argument('--pretrained', action='store_true', help="the tag's pretrained weights")
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                        help='model settings, key=value (e.g. gcp_dim=256 num_classes=10)')
    parser.add_argument('--opset', type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='largest onnxruntime-vs-PyTorch logit error accepted, relative to the largest logit')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing file')


def run(args: argparse.Namespace) -> int:
    problem = path_problem(args.checkpoint) if args.checkpoint else None
    if problem:
        raise UsageError(f"--checkpoint '{args.checkpoint}': {problem}")
    if args.model is None and not args.checkpoint:
        raise UsageError('give the model argument (or a train.py --checkpoint, which names its architecture)')
    if args.img_size is not None and args.img_size < 1:
        raise UsageError(f'--img-size must be at least 1, got {args.img_size}')
    if not args.rtol > 0:
        raise UsageError(f'--rtol must be positive, got {args.rtol}')
    if Path(args.out).is_dir():
        raise UsageError(f"--out '{args.out}': is a folder; give the path of the .onnx file to write")
    check_model_kwargs(args.model_kwargs)
    model_name, model_kwargs, overlay = args.model, dict(args.model_kwargs), {}
    if args.checkpoint:  # a checkpoint that cannot be read or does not name this model fails (CheckpointError)
        model_name, model_kwargs, overlay = trained_model(args.checkpoint, args.model, model_kwargs)
    # the name (a local-dir: folder too), the tag and the settings
    with usage_errors(FileNotFoundError, MetaBuildError, prefix=f'{model_name}: '):
        probe = build_on_meta(model_name, exportable=True, pretrained_cfg_overlay=overlay or None, **model_kwargs)
    size = input_size(probe, args.img_size)  # the size it is traced at, a ViT resized to --img-size
    try:
        run_on_meta(probe, size)
    except MetaInputError as e:
        given = f' (--img-size {args.img_size})' if args.img_size else ''
        raise UsageError(f"{model_name} cannot take {'x'.join(map(str, size))} inputs{given}: {e}") from e
    try:
        model = timm.create_model(
            model_name, pretrained=args.pretrained, checkpoint_path=args.checkpoint, exportable=True,
            pretrained_cfg_overlay=overlay or None, **model_kwargs)
    except RuntimeError as e:  # weights that cannot be had or that do not fit
        raise CommandError(f'{args.checkpoint or model_name}: {e}') from e
    try:
        report = export_onnx(model, args.out, img_size=args.img_size, dynamic_batch=args.dynamic_batch,
                             opset=args.opset, rtol=args.rtol, overwrite=args.overwrite)
    except FileExistsError as e:
        raise CommandError(f'{e} (pass --overwrite to replace it)') from e
    print(report.format())
    return 0
