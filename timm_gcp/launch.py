"""Run timm's scripts (train.py, validate.py, benchmark.py, inference.py) with the GCP models registered.

timm has no plugin discovery and its scripts are not on PyPI (they live in a clone of
https://github.com/huggingface/pytorch-image-models). The launcher imports `timm_gcp`, which
registers the models, checks the arguments, then runs the script as `__main__` with its own
arguments, so its exit status and tracebacks are the script's own:

    python -m timm_gcp.launch path/to/train.py --model resnet50_isqrt --data-dir /data/imagenet
    torchrun --nproc_per_node=8 -m timm_gcp.launch path/to/train.py --config train_scripts/x.yaml ...

The checks name, before anything trains: `--config` keys the script does not know (train.py keeps
them silently), a model name or tag that is not registered, a model that cannot be built with the
script's `--model-kwargs` / `--num-classes` / `--in-chans` or take its input size (built and run on
the meta device), a folder dataset without images for a split, arguments the script does not have,
a checkpoint argument that is not a file, `--test-pool` with a GCP model, and `--device cuda` without
CUDA. They read the script's module-level `parser` (and train.py's `config_parser`) by executing it
under another module name, which its main guard skips; where that fails, train.py's YAML keys are
checked against `TRAIN_ARGS`. `--no-check` skips the checks, `--check-only` stops after them and
prints what was checked; both are the launcher's own flags wherever they stand, and never reach
the script.

train.py and validate.py get the launcher's options as an argument group of their parser
(`--head-lr-scale`, `--freeze-trunk`, `--flip-test`, the evaluation crop for training; CPU DDP and
`--sync-bn` under torchrun): where any is in use, the script's module runs under another name and its
main() is called with the names it looks up replaced (`timm_gcp.training.scripts`; docs/training.md,
"The launcher's options").
"""
import argparse
import ast
import contextlib
import difflib
import io
import os
import runpy
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import timm
import torch
import yaml
from timm.data import get_img_extensions
from timm.models import get_arch_pretrained_cfgs, split_model_name_tag

from . import cli
from ._errors import UsageError, check_model_kwargs, path_problem
from .models.gcp_resnet import DEPRECATED_NAMES  # importing timm_gcp registers the models
from .checkpoints.train_run import CheckpointError, read_checkpoint, trained_arch
from .measure import MetaBuildError, MetaInputError, build_on_meta, device_problem, run_on_meta
from .models.registry import is_gcp_model, missing_backbone
from .training.finetune import HEAD_SCOPES, head_module_names
from .training.scripts import EVAL_CROP_MODES, GROUP_TITLE, ScriptPatches, add_script_arguments, options_in_use

__all__ = ['GCP_TRAIN_ARGS', 'LaunchError', 'TRAIN_ARGS', 'add_arguments', 'check_gcp_options', 'check_model_build',
           'check_resumed_head_lr', 'check_script_args', 'main', 'run', 'run_script']

SCRIPTS_URL = 'https://github.com/huggingface/pytorch-image-models'

# train.py's argument names (argparse dests) at pytorch-image-models aa4b5850 (2026-08); used only
# when train.py's own parser cannot be read, and by the tests of the recipes in train_scripts/
TRAIN_ARGS = frozenset("""
    aa amp amp_dtype aug_repeats aug_splits batch_size bce_loss bce_pos_weight bce_sum bce_target_thresh
    bn_eps bn_momentum channels_last checkpoint_hist class_map clip_grad clip_mode color_jitter
    color_jitter_prob cooldown_epochs crop_pct cutmix cutmix_minmax data data_dir dataset dataset_download
    dataset_trust_remote_code decay_epochs decay_milestones decay_rate device device_modules dist_bn
    distill_loss_weight drop drop_block drop_connect drop_path epoch_repeats epochs eval_metric experiment
    fast_norm fuser gaussian_blur_prob gp grad_accum_steps grad_checkpointing grayscale_prob head_init_bias
    head_init_scale hflip img_size in_chans initial_checkpoint input_img_mode input_key input_size
    interpolation jsd_loss kd_distill_type kd_loss_type kd_model_name kd_student_feature_dim
    kd_teacher_feature_dim kd_temperature kd_token_distill_type layer_decay layer_decay_min_scale
    layer_decay_no_opt_scale local_rank log_interval log_wandb lr lr_base lr_base_scale lr_base_size
    lr_cycle_decay lr_cycle_limit lr_cycle_mul lr_k_decay lr_noise lr_noise_pct lr_noise_std mean min_lr
    mixup mixup_mode mixup_off_epoch mixup_prob mixup_switch_prob model model_dtype model_ema
    model_ema_decay model_ema_force_cpu model_ema_warmup model_kwargs momentum naflex_loader
    naflex_loss_scale naflex_max_seq_len naflex_patch_size_probs naflex_patch_sizes
    naflex_patchify_channels_first naflex_train_seq_lens no_aug no_ddp_bb no_prefetcher no_resume_opt
    num_classes opt opt_betas opt_eps opt_kwargs output patience_epochs pin_mem pretrained pretrained_path
    ratio recount recovery_interval remode reprob resplit resume save_images scale sched sched_on_updates
    seed smoothing split_bn start_epoch std sync_bn synchronize_step target_key task_loss_weight
    torchcompile torchcompile_mode torchscript train_batch_sizes train_batches_per_epoch train_crop_mode
    train_img_sizes train_interpolation train_num_samples train_size_probs train_size_random_mix
    train_size_schedule train_size_schedule_spread train_split tta use_multi_epochs_loader val_interval
    val_num_samples val_split validation_batch_size variable_batch_loss_scale vflip wandb_project
    wandb_resume_id wandb_tags warmup_epochs warmup_lr warmup_prefix weight_decay worker_seeding workers
""".split())

# the keys of the launcher's options for train.py (docs/training.md, "The launcher's options")
GCP_TRAIN_ARGS = frozenset({'head_lr_scale', 'head_lr_scope', 'freeze_trunk', 'flip_test', 'crop_mode'})

# YAML keys that are no flag but that timm reads from the parsed args (timm.utils.init_distributed_device)
EXTRA_CONFIG_KEYS = frozenset({'dist_backend', 'dist_url'})

# the launcher's own flags, taken out of the script's arguments wherever they stand
_LAUNCHER_FLAGS = ('--check-only', '--no-check')

# the scripts the launcher adds its options to, and those options' flags with the scripts that take them
_GCP_SCRIPTS = ('train.py', 'validate.py')
_GCP_FLAGS = {'--flip-test': _GCP_SCRIPTS, '--no-flip-test': _GCP_SCRIPTS, '--head-lr-scale': ('train.py',),
              '--head-lr-scope': ('train.py',), '--freeze-trunk': ('train.py',)}

_TRAIN_SPLITS = ('train', 'training')
_EVAL_SPLITS = ('val', 'valid', 'validation', 'eval', 'evaluation')


class LaunchError(UsageError):
    """A problem with the script or its arguments, found before the script runs."""


def find_script(script: str) -> str:
    """The absolute path of a timm script; LaunchError saying how to get timm's scripts if it is missing."""
    if not os.path.isfile(script):
        raise LaunchError(
            f"script '{script}' not found: timm's scripts (train.py, validate.py, benchmark.py, inference.py) "
            f"are not on PyPI; clone {SCRIPTS_URL} and pass the path of the script in that clone")
    return os.path.abspath(script)


@contextlib.contextmanager
def _script_context(script: str, argv: Sequence[str]) -> Iterator[None]:
    """sys.argv and sys.path[0] as `python script.py ARGS` sets them, restored afterwards."""
    old_argv, old_path0 = sys.argv, sys.path[0]
    sys.argv = [script, *argv]
    sys.path[0] = os.path.dirname(script)
    try:
        yield
    finally:
        sys.argv, sys.path[0] = old_argv, old_path0


def _has_main_guard(script: str) -> bool:
    """Whether the script runs its work only under `if __name__ == '__main__':` (so it can be imported)."""
    with open(script, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=script)
    for node in tree.body:
        test = node.test if isinstance(node, ast.If) else None
        if (
                isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == '__name__'
                and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
                and test.comparators[0].value == '__main__'
        ):
            return True
    return False


def _script_globals(script: str) -> Optional[Dict[str, Any]]:
    """The module globals of the script executed under a module name other than `__main__`, which its main guard
    skips (its functions' own globals, so that replacing a name changes what main() finds); None where it has no
    main guard or fails (its own run reports the same error with its own traceback)."""
    try:
        if not _has_main_guard(script):
            return None
        with _script_context(script, []):
            namespace = runpy.run_path(script, run_name='__timm_gcp_script__')
    except Exception:
        return None
    main = namespace.get('main')
    return main.__globals__ if callable(main) and hasattr(main, '__globals__') else namespace


def _gcp_script(script: str) -> Optional[str]:
    """'train.py' or 'validate.py' where `script` is one the launcher adds its options to, else None."""
    name = os.path.basename(script)
    return name if name in _GCP_SCRIPTS else None


def _parsers(namespace: Optional[Dict[str, Any]], script: str) -> Tuple[
        Optional[argparse.ArgumentParser], Optional[argparse.ArgumentParser]]:
    """A script's `parser` (with the launcher's argument group for train.py and validate.py) and `config_parser`."""
    parser, config_parser = (namespace or {}).get('parser'), (namespace or {}).get('config_parser')
    parser = parser if isinstance(parser, argparse.ArgumentParser) else None
    if parser is not None and _gcp_script(script) and not any(g.title == GROUP_TITLE for g in parser._action_groups):
        add_script_arguments(parser, train=_gcp_script(script) == 'train.py')
    return parser, config_parser if isinstance(config_parser, argparse.ArgumentParser) else None


def script_parsers(script: str) -> Tuple[Optional[argparse.ArgumentParser], Optional[argparse.ArgumentParser]]:
    """The script's module-level `parser` and `config_parser` (None where absent or unreadable); train.py's and
    validate.py's parser with the launcher's options (docs/training.md, "The launcher's options")."""
    return _parsers(_script_globals(script), script)


def load_config(path: str) -> Dict[str, Any]:
    """A `--config` YAML file as a dict; LaunchError naming the file if it is missing or not a mapping."""
    if not os.path.isfile(path):
        raise LaunchError(f"config file '{path}' not found")
    with open(path, encoding='utf-8') as f:
        try:
            cfg = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise LaunchError(f"config file '{path}' is not valid YAML: {e}") from e
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise LaunchError(f"config file '{path}' must hold a mapping of train.py argument names to values")
    return cfg


def check_config_keys(cfg: Dict[str, Any], known: Sequence[str], path: str, script: str = 'train.py') -> None:
    """LaunchError naming every key of `cfg` that is no argument of the script (with close matches)."""
    known = set(known) | EXTRA_CONFIG_KEYS
    unknown = [k for k in cfg if k not in known]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key).replace('-', '_'), sorted(known), n=1)
        hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
    raise LaunchError(
        f"config file '{path}': unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; keys are the "
        f"argument names of {os.path.basename(script)} with underscores, e.g. 'weight_decay' for --weight-decay")


def check_model(name: Optional[str], flag: str = '--model') -> None:
    """LaunchError if `name` is neither a registered model nor `arch.tag` with a registered tag.

    Hub and local-dir names, wildcards, 'all' and model-list files (validate.py, benchmark.py) pass.
    """
    if not isinstance(name, str) or not name or name == 'all' or os.path.isfile(name):
        return
    if name.startswith('local-dir:') and not os.path.isfile(os.path.join(name[len('local-dir:'):], 'config.json')):
        raise LaunchError(f"{flag} '{name}': no config.json in {name[len('local-dir:'):]!r} (a local-dir: model is a "
                          f"folder written by `timm-gcp convert` or timm's save_for_hf)")
    if name.startswith(('hf-hub:', 'hf_hub:', 'local-dir:')) or any(c in name for c in '*?['):
        return
    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f"; close matches: {', '.join(close)}" if close else ''
        raise LaunchError(f"{flag} '{name}': no such model in timm's registry (with timm_gcp imported){hint}")
    tags = sorted(get_arch_pretrained_cfgs(arch))
    if tag and f'{arch}.{tag}' not in tags and f'{arch}.{tag}' not in DEPRECATED_NAMES:
        raise LaunchError(f"{flag} '{name}': {arch} has no pretrained tag '{tag}'; its tags: {', '.join(tags)}")


def _in_chans(ns: argparse.Namespace) -> Optional[int]:
    """The input channels the script gives the model (`--in-chans`, else `--input-size`'s first), if any."""
    return getattr(ns, 'in_chans', None) or (getattr(ns, 'input_size', None) or [None])[0]


def _input_size(ns: argparse.Namespace, model: torch.nn.Module) -> Tuple[int, int, int]:
    """The (channels, height, width) the script feeds `model`, as timm's resolve_data_config picks it."""
    channels, height, width = model.pretrained_cfg.get('input_size', (3, 224, 224))
    if getattr(ns, 'input_size', None):
        _, height, width = ns.input_size
    elif getattr(ns, 'img_size', None):
        height = width = ns.img_size
    return _in_chans(ns) or channels, height, width


def check_model_build(ns: argparse.Namespace) -> Optional[str]:
    """LaunchError if the script's `--model` cannot be built with its arguments or take its input size.

    The model is built with `--model-kwargs`, `--num-classes`, `--in-chans` and `--gp` as the scripts
    pass them to `timm.create_model`, and run once at `--img-size` / `--input-size` (else the model's
    own), all on the meta device: no weights, no work. Returns what was built, for the `--check-only`
    report; None for names it cannot build here (Hub and local-dir names, wildcards, model lists).
    """
    kwargs = dict(getattr(ns, 'model_kwargs', None) or {})
    check_model_kwargs(kwargs)
    name = getattr(ns, 'model', None)
    if not isinstance(name, str) or not timm.is_model(split_model_name_tag(name)[0]):
        return None
    given = dict(num_classes=getattr(ns, 'num_classes', None), in_chans=_in_chans(ns),
                 global_pool=getattr(ns, 'gp', None))
    kwargs.update({k: v for k, v in given.items() if v is not None})
    problem = missing_backbone(name, kwargs)
    if problem:
        raise LaunchError(f'--model {problem}')
    described = name + (f" with {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}" if kwargs else '')
    try:
        model = build_on_meta(name, **kwargs)
    except MetaBuildError as e:
        raise LaunchError(f'--model {name} cannot be built with the given arguments ({described}): {e}') from e
    _check_head(ns, model, name)
    size = _input_size(ns, model)
    try:
        ran = run_on_meta(model, size)
    except MetaInputError as e:
        hint = '' if 'img_size' in kwargs else e.hint(name, f'pass --model-kwargs img_size={size[1]}')
        raise LaunchError(f"--model {name} cannot take {'x'.join(map(str, size))} inputs: {e}{hint}") from e
    if not ran:
        return f'model {described}, built on the meta device (its input size unchecked: it does not run there)'
    return f"model {described}, built and run on {'x'.join(map(str, size))} inputs on the meta device"


def _check_head(ns: argparse.Namespace, model: torch.nn.Module, name: str) -> None:
    """LaunchError if `--freeze-trunk` / `--head-lr-scale` name a head that `model` does not have."""
    for flag, scope in (('--freeze-trunk', getattr(ns, 'freeze_trunk', None)),
                        ('--head-lr-scale', getattr(ns, 'head_lr_scope', None)
                         if getattr(ns, 'head_lr_scale', None) is not None else None)):
        if scope:
            try:
                head_module_names(model, scope)
            except ValueError as e:
                raise LaunchError(f'{flag}: --model {name} has no {scope} to train: {e}') from e


def check_gcp_options(ns: argparse.Namespace, script: str, args: Sequence[str]) -> List[str]:
    """LaunchError for a launcher option the script does not take or that cannot work with the script's other
    arguments; returns the options in use (docs/training.md, "The launcher's options")."""
    name = os.path.basename(script)
    flags = {a.split('=')[0] for a in args}
    for flag, scripts in _GCP_FLAGS.items():
        if flag in flags and name not in scripts:
            raise LaunchError(f"{flag} is an option of timm-gcp launch for {' and '.join(scripts)} only, not "
                              f"{name}")
    if not _gcp_script(script):
        return []
    for dest in ('freeze_trunk', 'head_lr_scope'):  # a --config value skips argparse's choices
        value = getattr(ns, dest, None)
        if value is not None and value not in HEAD_SCOPES:
            raise LaunchError(f"--{dest.replace('_', '-')} {value!r} names no head; valid: {', '.join(HEAD_SCOPES)} "
                              f"(in a --config file, e.g. '{dest}: head')")
    used = options_in_use(ns, train=name == 'train.py')
    scale = getattr(ns, 'head_lr_scale', None)
    if scale is not None and not scale > 0:
        raise LaunchError(f'--head-lr-scale must be positive, got {scale}')
    if getattr(ns, 'torchscript', False) and ({'--flip-test', '--freeze-trunk'} & set(used)):
        raise LaunchError('--flip-test and --freeze-trunk add forward hooks, which --torchscript drops: leave '
                          '--torchscript out')
    if getattr(ns, 'train_crop_mode', None) in EVAL_CROP_MODES:
        conflicts = [flag for flag, on in (('--naflex-loader', getattr(ns, 'naflex_loader', False)),
                                           ('--train-img-sizes', getattr(ns, 'train_img_sizes', None)),
                                           ('--aug-splits', getattr(ns, 'aug_splits', 0)),
                                           ('--no-aug', getattr(ns, 'no_aug', False))) if on]
        if conflicts:
            raise LaunchError(f'--train-crop-mode {ns.train_crop_mode} (the evaluation crop for training) replaces '
                              f"the random-resized crop of timm's standard training transform, which "
                              f"{', '.join(conflicts)} does not use: leave one of them out")
    return used


def _is_folder_dataset(name: Optional[str]) -> bool:
    """Whether timm's `create_dataset` reads `name` from a folder (or tar) of image files."""
    prefix, sep, rest = (name or '').partition('/')
    return not sep or (prefix.lower() == 'torch' and rest.lower() in ('folder', 'image_folder'))


def _split_folder(root: str, split: str) -> str:
    """The folder timm's `create_dataset` reads for `split`: a child folder named after it (or a synonym), else root."""
    name = split.split('[')[0]
    synonyms = _TRAIN_SPLITS if name in _TRAIN_SPLITS else _EVAL_SPLITS if name in _EVAL_SPLITS else ()
    for candidate in (name, *synonyms):
        if os.path.exists(os.path.join(root, candidate)):
            return os.path.join(root, candidate)
    return root


def _has_image(folder: str) -> bool:
    """Whether any file below `folder` has one of timm's image extensions (stops at the first)."""
    extensions = get_img_extensions(as_set=True)
    for _, _, files in os.walk(folder, followlinks=True):
        if any(os.path.splitext(f)[1].lower() in extensions for f in files):
            return True
    return False


def check_data(root: Optional[str], dataset: Optional[str] = '', splits: Sequence[str] = ()) -> None:
    """LaunchError if a folder dataset's `root` is missing, not a folder, or holds no images for a split.

    Other datasets (`torch/cifar10`, `hfds/...`, `wds/...`) are left to their readers.
    """
    if not _is_folder_dataset(dataset):
        return
    if not root:
        raise LaunchError('no data folder given: pass --data-dir DIR (a folder of class sub-folders of images)')
    if not os.path.exists(root):
        raise LaunchError(f"data folder '{root}' does not exist")
    if os.path.isfile(root) and root.endswith('.tar') and '/' not in (dataset or ''):
        return
    if not os.path.isdir(root):
        raise LaunchError(f"data folder '{root}' is not a folder")
    for split in splits or ('',):
        folder = _split_folder(root, split) if split else root
        if not _has_image(folder):
            where = f" for the '{split}' split (read from '{folder}')" if split else ''
            raise LaunchError(
                f"data folder '{root}' holds no images{where}; expected files ending in "
                f"{', '.join(get_img_extensions())}")


def check_unknown_args(extras: Sequence[str], parser: argparse.ArgumentParser, script: str) -> None:
    """LaunchError naming the arguments the script's parser does not know (with close matches)."""
    if not extras:
        return
    flags = [opt for action in parser._actions for opt in action.option_strings]
    hints = []
    for arg in extras:
        close = difflib.get_close_matches(arg.split('=')[0], flags, n=1) if arg.startswith('-') else []
        hints.append(f"'{arg}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
    raise LaunchError(f"{os.path.basename(script)} has no argument{'s' if len(extras) > 1 else ''} {', '.join(hints)}")


# the scripts' arguments that name a checkpoint file, by dest; those whose weights load into --model
_FILE_ARGS = ('checkpoint', 'resume', 'initial_checkpoint', 'pretrained_path')
_WEIGHT_ARGS = ('checkpoint', 'resume', 'initial_checkpoint')


def check_files(ns: argparse.Namespace) -> None:
    """LaunchError naming a checkpoint (`--checkpoint`, `--resume`, ...) that is not a file."""
    for dest in _FILE_ARGS:
        path = getattr(ns, dest, None)
        if not isinstance(path, str) or not path:
            continue
        problem = path_problem(path)
        if problem:
            raise LaunchError(f"--{dest.replace('_', '-')} '{path}': {problem}")
        if dest in _WEIGHT_ARGS and isinstance(getattr(ns, 'model', None), str):
            try:  # a train.py checkpoint names the model it was trained as ('arch')
                checkpoint = read_checkpoint(path)[0]
                trained_arch(Path(path), checkpoint, ns.model, optional=False)
            except CheckpointError as e:
                raise LaunchError(f"--{dest.replace('_', '-')} {e}") from e
            if dest == 'resume':
                check_resumed_head_lr(ns, path, checkpoint)


def check_resumed_head_lr(ns: argparse.Namespace, path: str, checkpoint: Any) -> None:
    """LaunchError where `--resume`'s optimizer state trains the head at another `--head-lr-scale` than this run
    asks for: train.py would load the checkpoint's param groups, and with them its scale, without a word."""
    if getattr(ns, 'no_resume_opt', False) or not isinstance(checkpoint, dict):
        return
    optimizer = checkpoint.get('optimizer')
    groups = optimizer.get('param_groups', []) if isinstance(optimizer, dict) else []
    saved = sorted({g['head_lr_scale'] for g in groups if isinstance(g, dict) and 'head_lr_scale' in g})
    asked = getattr(ns, 'head_lr_scale', None)
    if saved == ([asked] if asked is not None else []):
        return
    had = ' and '.join(f'--head-lr-scale {k:g}' for k in saved) or 'no --head-lr-scale'
    wants = f'--head-lr-scale {asked:g}' if asked is not None else 'none'
    raise LaunchError(f"--resume {path}: its optimizer was built with {had}, this run asks for {wants}, and resuming "
                      f"would keep the checkpoint's: pass the same --head-lr-scale, or --no-resume-opt to start the "
                      f"optimizer afresh")


# the scripts' arguments that must be at least 1, by dest, with what 0 does in the script
_POSITIVE_ARGS = {
    'img_size': ": the scripts read 0 as unset and use the model's own input size",
    'input_size': ": the scripts read 0 as unset and use the model's own input size",
    'batch_size': '', 'validation_batch_size': '', 'epochs': '',
}


def check_positive(ns: argparse.Namespace, script: str) -> None:
    """LaunchError naming a size, batch size or epoch count below 1, and train.py / validate.py's --num-classes 0."""
    for dest, why in _POSITIVE_ARGS.items():
        value = getattr(ns, dest, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, int) and v < 1 for v in values):
            raise LaunchError(f"--{dest.replace('_', '-')} must be at least 1, got {value}{why if 0 in values else ''}")
    if os.path.basename(script) in ('train.py', 'validate.py') and getattr(ns, 'num_classes', None) == 0:
        raise LaunchError(f'--num-classes 0 builds the model without a classifier, which '
                          f'{os.path.basename(script)} scores as if it were one: give the number of classes')


def check_test_pool(ns: argparse.Namespace) -> None:
    """LaunchError for `--test-pool` with a GCP model: timm's test-time pooling assumes average pooling."""
    name = getattr(ns, 'model', None)
    if not getattr(ns, 'test_pool', False) or not isinstance(name, str) or not timm.is_model(name):
        return
    if is_gcp_model(name):
        raise LaunchError(
            f"--test-pool does not work with the GCP model '{name}': above the model's input size it wraps the "
            f"model in timm's TestTimePoolHead, which average-pools the features and runs the classifier as a 1x1 "
            f"conv, while a GCP classifier takes the covariance vector; the GCP head pools any input size itself, "
            f"so leave --test-pool out")


def check_device(
        ns: argparse.Namespace,
        parser: argparse.ArgumentParser,
        args: Sequence[str],
        cfg: Dict[str, Any],
) -> None:
    """LaunchError if the script would run on a device that is not here (CUDA, MPS, an index beyond the devices),
    with the flag that fixes it; a string that names no device is left to the script."""
    device = getattr(ns, 'device', None)
    if not isinstance(device, str):
        return
    try:
        problem = device_problem(device)
    except RuntimeError:
        return
    if problem:
        given = 'device' in cfg or any(a == '--device' or a.startswith('--device=') for a in args)
        source = '' if given else " (the script's default)"
        raise LaunchError(f"--device is '{device}'{source}, but {problem}")


def _config_path(args: Sequence[str], config_parser: Optional[argparse.ArgumentParser]) -> Tuple[str, List[str]]:
    """The `-c/--config` value and the other arguments, split as train.py's config parser splits them."""
    if config_parser is None:
        config_parser = argparse.ArgumentParser(add_help=False)
        config_parser.add_argument('-c', '--config', default='')
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            known, remaining = config_parser.parse_known_args(list(args))
        except SystemExit:  # a malformed --config flag: the script reports it
            return '', list(args)
    return getattr(known, 'config', '') or '', remaining


def _fallback_namespace(args: Sequence[str], cfg: Dict[str, Any]) -> argparse.Namespace:
    """The model and data folder from the command line and the YAML, where the script's parser is unavailable."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--model', '-m', default=None)
    parser.add_argument('--data-dir', default=None)
    parser.add_argument('--dataset', default='')
    parser.set_defaults(**{k: v for k, v in cfg.items() if k in ('model', 'data_dir', 'dataset')})
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return parser.parse_known_args(list(args))[0]
        except SystemExit:
            return argparse.Namespace()


def check_script_args(script: str, args: Sequence[str]) -> List[str]:
    """Check a timm script's arguments before it runs: `--config` keys, model name and build, data folder.

    Raises LaunchError naming the problem; returns what was checked (for `--check-only`). Anything
    the script's own parser rejects (or `--help`) is left to the script.
    """
    parser, config_parser = script_parsers(script)
    is_train = os.path.basename(script) == 'train.py'
    reads_config = config_parser is not None or (parser is None and is_train)
    config, remaining = _config_path(args, config_parser) if reads_config else ('', list(args))
    cfg = load_config(config) if config else {}
    checked = [f'config {config} ({len(cfg)} keys)'] if config else []
    if parser is None:
        if cfg and is_train:
            check_config_keys(cfg, TRAIN_ARGS | GCP_TRAIN_ARGS, config, script)
        ns = _fallback_namespace(remaining, cfg)
        check_model(getattr(ns, 'model', None))
        checked += [f'model name {ns.model}'] if getattr(ns, 'model', None) else []
        if getattr(ns, 'data_dir', None):
            check_data(ns.data_dir, getattr(ns, 'dataset', ''))
            checked.append(f'data folder {ns.data_dir}')
        return checked

    if cfg:
        check_config_keys(cfg, [a.dest for a in parser._actions], config, script)
        parser.set_defaults(**cfg)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            ns, extras = parser.parse_known_args(remaining)
        except SystemExit:
            return checked + ['nothing else: the script rejects its arguments itself']
    options = check_gcp_options(ns, script, remaining)
    # before anything reads the namespace: an unknown flag's value lands in the positional data folder
    check_unknown_args(extras, parser, script)
    check_model(getattr(ns, 'model', None))
    if getattr(ns, 'kd_model_name', None):
        check_model(ns.kd_model_name, '--kd-model-name')
    check_files(ns)
    check_positive(ns, script)
    check_test_pool(ns)
    check_device(ns, parser, remaining, cfg)
    built = check_model_build(ns)
    if built or getattr(ns, 'model', None):
        checked.append(built or f'model name {ns.model}')
    checked += [f'{dest} file {getattr(ns, dest)}' for dest in _FILE_ARGS if getattr(ns, dest, None)]
    if getattr(ns, 'device', None):
        checked.append(f'device {ns.device}')
    if options:
        checked.append(f"timm-gcp options {', '.join(options)}")
    if not (hasattr(ns, 'data_dir') or hasattr(ns, 'data')):
        return checked
    if hasattr(ns, 'train_split'):
        splits = [ns.train_split] + ([ns.val_split] if getattr(ns, 'val_split', None) else [])
    else:
        splits = [ns.split] if getattr(ns, 'split', None) else []
    roots = [r for r in (getattr(ns, 'data_dir', None), getattr(ns, 'data', None)) if r] or [None]
    for root in roots:
        check_data(root, getattr(ns, 'dataset', ''), splits)
        if _is_folder_dataset(getattr(ns, 'dataset', '')):
            checked.append(f"data folder {root} ({', '.join(splits) or 'images'})")
    return checked


def _patched_main(script: str, args: Sequence[str]) -> Optional[Any]:
    """train.py's or validate.py's main() with the names replaced that the launcher's options need (and, for
    train.py on the CPU under torchrun, DDP and `--sync-bn`); None where the script runs as it is: no option in
    use, or its arguments or module not readable here (the script then reports its own error)."""
    name = _gcp_script(script)
    namespace = _script_globals(script) if name else None
    parser, config_parser = _parsers(namespace, script)
    if parser is None or not callable(namespace.get('main')):
        return None
    config, remaining = _config_path(args, config_parser) if config_parser is not None else ('', list(args))
    if {'-h', '--help'} & set(remaining):
        return namespace['main']  # the script's own --help, listing the launcher's group
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            if config:
                parser.set_defaults(**load_config(config))
            ns = parser.parse_known_args(remaining)[0]
        except (SystemExit, LaunchError):
            return None
    train = name == 'train.py'
    cpu_ddp = train and int(os.environ.get('WORLD_SIZE', '1')) > 1 and str(getattr(ns, 'device', '')).startswith('cpu')
    if not (options_in_use(ns, train) or cpu_ddp):
        return None
    missing = [n for n in ('create_model', *(('create_optimizer_v2', 'create_loader') if train else ()))
               if n not in namespace]
    if missing:
        raise LaunchError(f"{script} has no module-level {', '.join(missing)}, which the launcher's options "
                          f"replace: run them with timm's own {name}")
    ScriptPatches(ns, train).install(namespace)
    return namespace['main']


def run_script(script: str, args: Sequence[str]) -> None:
    """Run `script` as `__main__` with `args` as its command line, or train.py / validate.py's main() with the
    launcher's options applied (docs/training.md, "The launcher's options"); its exceptions and SystemExit
    propagate."""
    with _script_context(script, args):
        main = _patched_main(script, args)
        if main is None:
            runpy.run_path(script, run_name='__main__')
        else:
            main()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--check-only', action='store_true',
                        help='check the arguments, print what was checked, then exit without running (anywhere on '
                             'the command line: it never reaches the script)')
    parser.add_argument('--no-check', action='store_true',
                        help='run the script without checking its arguments (anywhere on the command line)')
    parser.add_argument('script', help="path of timm's train.py, validate.py, benchmark.py or inference.py")
    parser.add_argument('script_args', nargs=argparse.REMAINDER, help="the script's own arguments")


def run(opts: argparse.Namespace) -> int:
    """Check (LaunchError), then run the script, whose exceptions and SystemExit propagate."""
    script = find_script(opts.script)
    own = set(opts.script_args) & set(_LAUNCHER_FLAGS)
    script_args = [a for a in opts.script_args if a not in _LAUNCHER_FLAGS]
    check_only, no_check = opts.check_only or '--check-only' in own, opts.no_check or '--no-check' in own
    if check_only and no_check:
        raise LaunchError('--check-only and --no-check exclude each other: pass one of them')
    if not no_check and not {'-h', '--help'} & set(script_args):
        checked = check_script_args(script, script_args)
        if check_only:
            print(f"{os.path.basename(script)}: checked {'; '.join(checked) or 'the script'}: ok")
    if check_only:
        return 0
    run_script(script, script_args)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m timm_gcp.launch ARGS`: `timm-gcp launch ARGS`, which also reports its errors."""
    return cli.main(['launch', *(sys.argv[1:] if argv is None else argv)])


if __name__ == '__main__':
    sys.exit(main())
