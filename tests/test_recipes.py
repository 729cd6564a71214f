"""The training recipes in train_scripts/: one per published recipe of every GCP model, usable as train.py --config.

Without timm's scripts the keys are checked against `timm_gcp.launch.TRAIN_ARGS`; with TIMM_SCRIPTS_DIR
set, against train.py's own parser, and the learning-rate schedule each recipe gives through timm's
`scheduler_kwargs` / `create_scheduler_v2` (what train.py calls) is checked against the paper's.
"""
import math
import os
from pathlib import Path

import pytest
import timm
import torch
from timm.models import get_arch_pretrained_cfgs, split_model_name_tag

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.launch import GCP_TRAIN_ARGS, TRAIN_ARGS, load_config, script_parsers

from tests.helpers import REPO
from tests.helpers.timm_sources import SCRIPTS_DIR, needs_scripts

RECIPES_DIR = REPO / 'train_scripts'
RECIPES = sorted(RECIPES_DIR.glob('*.yaml'))
RESNETS = set(timm.list_models(module='gcp_resnet'))
VITS = set(timm.list_models(module='gcp_vit'))
CNN_RECIPES = [p for p in RECIPES if split_model_name_tag(p.stem)[0] in RESNETS]
VIT_RECIPES = [p for p in RECIPES if split_model_name_tag(p.stem)[0] in VITS]


def _ids(paths):
    return [p.stem for p in paths]


def test_every_gcp_model_has_a_recipe():
    archs = {split_model_name_tag(p.stem)[0] for p in RECIPES}
    assert archs == RESNETS | VITS
    assert len(CNN_RECIPES) + len(VIT_RECIPES) == len(RECIPES)
    # the TPAMI'23 recipes train the ms_ architectures; the names before them are gone
    assert {p.stem for p in RECIPES if p.stem.endswith('.tpami_in1k')} == {
        f'ms_{arch}.tpami_in1k' for arch in ('resnet18_isqrt', 'resnet34_isqrt', 'resnet50_isqrt', 'resnet18_dropcov',
                                             'resnet34_dropcov', 'resnet50_dropcov')}
    assert {'resnet18_isqrt', 'resnet34_isqrt', 'resnet18_dropcov'} <= {p.stem for p in RECIPES}


@pytest.mark.parametrize('path', RECIPES, ids=_ids(RECIPES))
def test_recipe_names_its_model_and_uses_train_py_keys(path):
    cfg = load_config(path)
    arch, tag = split_model_name_tag(path.stem)
    assert cfg['model'] == arch
    if tag:
        assert path.stem in get_arch_pretrained_cfgs(arch)
    assert set(cfg) <= TRAIN_ARGS
    assert cfg['device_modules'] == ['timm_gcp']  # plain `train.py --config` registers the models too
    # lr comes from lr_base and the global batch, so it scales with the GPU count
    assert 'lr' not in cfg and cfg['lr_base_scale'] == 'linear'


@pytest.mark.parametrize('path', CNN_RECIPES, ids=_ids(CNN_RECIPES))
def test_cnn_recipes(path):
    """SGD momentum 0.9 (no Nesterov), no warm-up, weight decay 1e-4, plain crop + flip; LS 0.1 for TPAMI'23 only."""
    cfg = load_config(path)
    arch, tag = split_model_name_tag(path.stem)
    assert cfg['opt'] == 'momentum' and cfg['momentum'] == 0.9 and cfg['weight_decay'] == 1e-4
    assert cfg['warmup_epochs'] == 0 and cfg['color_jitter'] == 0.0 and cfg['train_interpolation'] == 'bilinear'
    assert not {'aa', 'mixup', 'cutmix', 'reprob', 'model_ema'} & set(cfg)
    tpami = tag == 'tpami_in1k'
    assert tpami == arch.startswith('ms_')  # the MindSpore recipes train the architectures with its numerics
    assert cfg['smoothing'] == (0.1 if tpami else 0.0)
    # the PyTorch originals decay every parameter; MindSpore (and timm by default) skip BN and biases
    assert cfg.get('opt_kwargs') == (None if tpami else {'filter_bias_and_bn': False})
    lr_at_base = cfg['lr_base'] * 256 / cfg['lr_base_size']
    if tag == 'fmpn_in1k':
        assert (cfg['sched'], cfg['decay_milestones'], cfg['epochs']) == ('multistep', [31, 46, 61], 65)
        assert cfg['lr_base_size'] == 160 and cfg['lr_base'] == 0.1
    elif tag == 'gcp_lradju_in1k':
        assert (cfg['sched'], cfg['decay_rate'], cfg['epochs'] + cfg['cooldown_epochs']) == ('poly', 2.0, 50)
    else:
        assert (cfg['sched'], cfg['decay_epochs'], cfg['decay_rate']) == ('step', 30, 0.1)
        assert cfg['epochs'] == (90 if tpami and arch.startswith('ms_resnet34') else 100)
        dropcov_ms = tpami and 'dropcov' in path.stem
        assert lr_at_base == pytest.approx(0.12 if dropcov_ms else 0.1)


@pytest.mark.parametrize('path', VIT_RECIPES, ids=_ids(VIT_RECIPES))
def test_vit_recipes(path):
    """DeiT's recipe: AdamW, 1e-3 at batch 1024, cosine, 5 warm-up epochs, 300 (+10) epochs, RandAugment, EMA."""
    cfg = load_config(path)
    assert cfg['opt'] == 'adamw' and (cfg['lr_base'], cfg['lr_base_size']) == (1e-3, 1024)
    assert (cfg['sched'], cfg['warmup_epochs'], cfg['epochs'], cfg['cooldown_epochs']) == ('cosine', 5, 300, 10)
    assert (cfg['warmup_lr'], cfg['min_lr']) == (1e-6, 1e-5)
    assert cfg['aa'] == 'rand-m9-mstd0.5-inc1' and (cfg['mixup'], cfg['cutmix'], cfg['smoothing']) == (0.8, 1.0, 0.1)
    assert cfg['reprob'] == 0.25 and cfg['drop_path'] == 0.1
    assert cfg['model_ema'] is True and cfg['model_ema_decay'] == 0.99996
    expected_wd = 0.05 if path.stem.startswith('deit') else 0.065 if path.stem == 'vit_sot_base' else 0.03
    assert cfg['weight_decay'] == expected_wd


def _train_args(path: Path):
    """train.py's parsed arguments for `--config path --data-dir /data`, from its own parser."""
    parser, _ = script_parsers(os.path.join(SCRIPTS_DIR, 'train.py'))
    assert parser is not None
    cfg = load_config(path)
    assert set(cfg) <= {a.dest for a in parser._actions}
    parser.set_defaults(**cfg)
    return parser.parse_args(['--data-dir', '/data'])


def _epoch_lrs(args, lr: float):
    """The LR of every epoch from timm's scheduler built as train.py builds it."""
    from timm.scheduler import create_scheduler_v2, scheduler_kwargs

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(args), updates_per_epoch=100)
    lrs = []
    for epoch in range(num_epochs):
        scheduler.step(epoch)
        lrs.append(optimizer.param_groups[0]['lr'])
    return num_epochs, lrs


@pytest.mark.slow
@needs_scripts
@pytest.mark.parametrize('path', RECIPES, ids=_ids(RECIPES))
def test_recipe_schedule_through_train_py(path):
    args = _train_args(path)
    lr = args.lr_base * args.batch_size * 8 / args.lr_base_size  # the 8 GPUs the recipes are written for
    num_epochs, lrs = _epoch_lrs(args, lr)
    tag = split_model_name_tag(path.stem)[1]
    if tag == 'fmpn_in1k':
        assert num_epochs == 65 and lr == pytest.approx(0.1)
        assert [lrs[e] for e in (29, 30, 44, 45, 59, 60)] == pytest.approx([0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4])
    elif tag == 'gcp_lradju_in1k':
        assert num_epochs == 50
        assert lrs == pytest.approx([0.1 * (1 - e / 49) ** 2 for e in range(50)], abs=1e-12)
    elif path in CNN_RECIPES:
        peak = 0.12 if tag == 'tpami_in1k' and 'dropcov' in path.stem else 0.1
        assert num_epochs == args.epochs and lr == pytest.approx(peak)
        assert lrs == pytest.approx([peak * 0.1 ** (e // 30) for e in range(num_epochs)])
    else:
        assert num_epochs == 310
        assert lr == pytest.approx(1e-3 * args.batch_size * 8 / 1024)
        assert lrs[0] == pytest.approx(1e-6) and lrs[5] == pytest.approx(lr, rel=1e-3)
        assert lrs[300:] == pytest.approx([1e-5] * 10) and all(math.isfinite(v) for v in lrs)


# --- fine-grained fine-tuning (docs/backbones.md, "Fine-grained fine-tuning") ------------------------------

FINEGRAINED = sorted((RECIPES_DIR / 'finegrained').glob('*.yaml'))
FINEGRAINED_CLASSES = {'cub': 200, 'cars': 196, 'aircraft': 100}


def test_finegrained_recipes_cover_three_models_on_three_datasets():
    stems = {p.stem for p in FINEGRAINED}
    models = ('resnet50_isqrt_d256', 'convnext_tiny_isqrt', 'vit_small_patch16_224_isqrt')
    assert stems == {f'{m}_{d}' for m in models for d in FINEGRAINED_CLASSES}


@pytest.mark.parametrize('path', FINEGRAINED, ids=_ids(FINEGRAINED))
def test_finegrained_recipe_is_fast_mpn_cov_finetuning(path):
    """448 px, batch 10, 100 epochs of SGD momentum 0.9 at 1.2e-3 without decay, weight decay 1e-3, from pretrained
    weights."""
    cfg = load_config(path)
    assert set(cfg) <= TRAIN_ARGS | GCP_TRAIN_ARGS and cfg['device_modules'] == ['timm_gcp']
    assert timm.is_model(cfg['model']) and cfg['pretrained'] is True
    dataset = path.stem.rsplit('_', 1)[1]
    assert cfg['num_classes'] == FINEGRAINED_CLASSES[dataset] and cfg['img_size'] == 448
    assert (cfg['batch_size'], cfg['epochs'], cfg['lr_base'], cfg['lr_base_size']) == (10, 100, 1.2e-3, 10)
    assert (cfg['opt'], cfg['momentum'], cfg['weight_decay'], cfg['warmup_epochs']) == ('momentum', 0.9, 1e-3, 0)
    assert cfg['sched'] == 'step' and cfg['decay_epochs'] >= cfg['epochs']  # no decay within the run
    assert (cfg['color_jitter'], cfg['smoothing'], cfg['hflip']) == (0.0, 0.0, 0.5)
    # the original's crops: CUB Resize(448) + CenterCrop(448), Cars / Aircraft Resize((512, 512)) + CenterCrop(448),
    # for training (then a random flip) and test alike; the classifier at 5x the LR; flip-averaged test logits
    mode, crop_pct = ('center', 1.0) if dataset == 'cub' else ('squash', 0.875)
    assert (cfg['train_crop_mode'], cfg['crop_mode'], cfg['crop_pct']) == (mode, mode, crop_pct)
    assert 448 / crop_pct == (448 if dataset == 'cub' else 512) and cfg['interpolation'] == 'bilinear'
    assert (cfg['head_lr_scale'], cfg['head_lr_scope'], cfg['flip_test']) == (5, 'classifier', True)
    text = path.read_text()
    assert 'cannot express' not in text and 'Residue' in text  # the one difference left is said
    if cfg['model'].startswith('resnet50_isqrt_d256'):
        assert cfg['pretrained_path'] == 'resnet50_isqrt_d256.fmpn_in1k/model.safetensors'
    else:
        arch, tag = split_model_name_tag(cfg['model'])
        backbone = arch.rsplit('_', 1)[0]
        assert tag in {n.split('.', 1)[1] for n in timm.list_pretrained(f'{backbone}.*')}


@pytest.mark.slow
@needs_scripts
@pytest.mark.parametrize('path', FINEGRAINED, ids=_ids(FINEGRAINED))
def test_finegrained_schedule_through_train_py(path):
    args = _train_args(path)
    num_epochs, lrs = _epoch_lrs(args, args.lr_base * args.batch_size / args.lr_base_size)
    assert num_epochs == 100 and lrs == pytest.approx([1.2e-3] * 100)


# --- probing a frozen trunk (docs/probing.md, "Probing recipes") --------------------------------------------

PROBING = sorted((RECIPES_DIR / 'probing').glob('*.yaml'))
def test_probing_recipes_cover_the_convnext_vit_and_swin_presets():
    assert {p.stem for p in PROBING} == {f'{m}_in1k' for m in (
        'convnext_tiny_isqrt', 'vit_base_patch16_224_isqrt', 'swin_tiny_patch4_window7_224_isqrt')}


@pytest.mark.parametrize('path', PROBING, ids=_ids(PROBING))
def test_probing_recipe_is_moment_probings_imagenet_protocol(path):
    """A GCP head on a frozen ImageNet-21k/22k trunk, trained on ImageNet-1k as Moment Probing's script trains its
    head: AdamW 1e-4 at a global batch of 256, weight decay 0.05, cosine with 5 warm-up epochs from 1e-7 to 1e-8,
    30 + 10 epochs, DeiT's augmentation, EMA 0.99992."""
    cfg = load_config(path)
    assert set(cfg) <= TRAIN_ARGS | GCP_TRAIN_ARGS and cfg['device_modules'] == ['timm_gcp']
    assert cfg['freeze_trunk'] == 'head' and cfg['pretrained'] is True and cfg['num_classes'] == 1000
    arch, tag = split_model_name_tag(cfg['model'])
    assert path.stem == f'{arch}_in1k' and f'{arch}.{tag}' in get_arch_pretrained_cfgs(arch)
    assert tag.endswith(('in21k', 'in22k')) and '_ft_' not in tag  # the trunk never saw ImageNet-1k's labels
    assert (cfg['opt'], cfg['lr_base'], cfg['lr_base_size'], cfg['lr_base_scale']) == ('adamw', 1e-4, 256, 'linear')
    assert cfg['batch_size'] * 4 == 256 and cfg['weight_decay'] == 0.05  # MP's 4 GPUs x 64
    assert (cfg['sched'], cfg['epochs'], cfg['cooldown_epochs'], cfg['warmup_epochs']) == ('cosine', 30, 10, 5)
    assert (cfg['warmup_lr'], cfg['min_lr']) == (1e-7, 1e-8)
    assert (cfg['aa'], cfg['mixup'], cfg['cutmix'], cfg['smoothing'], cfg['reprob'], cfg['color_jitter']) == (
        'rand-m9-mstd0.5-inc1', 0.8, 1.0, 0.1, 0.25, 0.4)
    assert cfg['model_ema'] is True and cfg['model_ema_decay'] == 0.99992 and cfg['amp'] is True
    assert 'drop_path' not in cfg  # the frozen trunk runs in eval mode: drop path would do nothing
    assert cfg['img_size'] == 224 and timm.is_model(cfg['model'])
