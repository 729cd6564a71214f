"""The weights of every `arch.tag`: what the authors released, and whether timm-gcp hosts a conversion.

One `Release` per tag is the source of truth that the pretrained cfgs (`hf_hub_id`, of published tags
only), the README model table, the model cards, the missing-weights error and `timm-gcp release` read:

* the Hub repo timm-gcp publishes the converted weights to, and whether they are uploaded
  (`published` stays False until a maintainer has uploaded them and checked them on the Hub);
* the authors' published top-1 / top-5 (ImageNet-1k validation, 224 px, single centre crop) and
  the README row they come from (docs/checkpoints.md, "Published results");
* the authors' download links, as their READMEs give them (Google Drive; Baidu with its extract
  code), and the file name where the authors' code or README states it.

While a tag is unpublished, `timm.create_model(tag, pretrained=True)` fails at once with the
download page and the `timm-gcp convert` command that builds the weights locally, instead of
trying the Hub (docs/checkpoints.md, "Getting the weights").
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from huggingface_hub import constants, try_to_load_from_cache
from timm.models import is_model, resolve_pretrained_cfg, split_model_name_tag

from ..checkpoints.layouts import MINDSPORE_PREFIX
from ..checkpoints.mindspore import is_mindspore_checkpoint
from .sources import REPOS, pretrained_fields

__all__ = [
    'FILE_EXTENSIONS', 'Download', 'Release', 'RELEASES', 'WeightsUnavailableError', 'check_pretrained_source',
    'convert_command', 'hub_cached', 'local_file', 'release_cfgs', 'release_files', 'unavailable_message',
]

# extensions under which `timm-gcp release` also finds a file saved as `<arch>.<tag>.<ext>`
FILE_EXTENSIONS = ('.pth', '.pth.tar', '.ckpt', '.safetensors', '.bin')


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights that cannot be had; the message says how to build them locally."""


@dataclass(frozen=True)
class Download:
    """One download link of the authors' weights, as their README gives it."""
    host: str  # 'Google Drive' or 'Baidu'
    url: str
    extract_code: str = ''  # Baidu's

    def __str__(self) -> str:
        code = f' (extract code {self.extract_code})' if self.extract_code else ''
        return f'{self.host}: {self.url}{code}'


@dataclass(frozen=True)
class Release:
    """An `arch.tag`: the authors' weights and published accuracy, and timm-gcp's Hub repo for the conversion."""
    name: str
    top1: float
    top5: Optional[float]
    source: str  # key of REPOS: the repository whose README reports the accuracy and gives the links
    row: str  # the row of that README's table
    papers: Tuple[str, ...]  # keys of PAPERS, the method's paper first
    downloads: Tuple[Download, ...]
    file: str = ''  # the file name the authors' code or README gives ('' when they name none)
    file_format: str = 'PyTorch'  # or 'MindSpore'
    use_ema: bool = False  # the authors evaluate the EMA weights of their checkpoint
    note: str = ''
    published: bool = False  # uploaded to `hub_id` by a maintainer
    hub_id: str = ''  # '': timm-gcp/<name>
    code: str = ''  # key of REPOS: the code the weights were trained with, the cfg's origin_url ('': `source`)

    def __post_init__(self):
        if not self.hub_id:
            object.__setattr__(self, 'hub_id', f'timm-gcp/{self.name}')
        if not self.code:
            object.__setattr__(self, 'code', self.source)

    @property
    def page(self) -> str:
        """The README that gives the links and the accuracy."""
        return REPOS[self.source].url


def local_file(release: Release) -> str:
    """The name to save the authors' file under: theirs where they give one, else `<arch>.<tag>.pth|.ckpt`."""
    return release.file or f'{release.name}{".ckpt" if release.file_format == "MindSpore" else ".pth"}'


def release_files(release: Release) -> Tuple[str, ...]:
    """File names `timm-gcp release` takes for this tag: the authors' name, then `<arch>.<tag>` with any extension."""
    return tuple(dict.fromkeys((local_file(release),) + tuple(f'{release.name}{ext}' for ext in FILE_EXTENSIONS)))


def _command(src: str, name: str, use_ema: bool = False) -> str:
    """The `timm-gcp convert` command line that builds `name` from the file `src`."""
    return f'timm-gcp convert {src} --model {name}{" --use-ema" if use_ema else ""} --out {name}'


def _convert_then_load(src: str, name: str, use_ema: bool = False) -> str:
    """The conversion of `src` into `name`, and the line that loads the result, as the errors print them."""
    return (f'    {_command(src, name, use_ema)}\n'
            f"  and load it with timm.create_model('local-dir:{name}', pretrained=True).")


def convert_command(release: Release) -> str:
    """The `timm-gcp convert` command line that builds the tag's weights from the authors' file."""
    return _command(local_file(release), release.name, release.use_ema)


def unavailable_message(release: Release, reason: str) -> str:
    """What to do when the tag's Hub weights cannot be had: the authors' links and the conversion."""
    links = '\n'.join(f'    {d}' for d in release.downloads)
    return (
        f'{release.name}: no pretrained weights: {reason}.\n'
        f'  Build them locally from the authors\' {release.file_format} file, listed at {release.page} '
        f'(row "{release.row}"):\n{links}\n'
        f'  Save it as {local_file(release)}, then run\n'
        + _convert_then_load(local_file(release), release.name, release.use_ema))


def hub_cached(repo_id: str, filename: Optional[str] = None, cache_dir: Optional[str] = None) -> bool:
    """Whether the local Hub cache holds the weights timm would download: `filename` (a cfg's
    `hf_hub_filename`), else safetensors or the .bin."""
    files = (filename,) if filename else ('model.safetensors', 'pytorch_model.bin')
    return any(isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache_dir), str) for f in files)


def _check_local_file(variant: str, tag: str, file: str) -> None:
    path = Path(file)
    if not path.is_file():
        raise WeightsUnavailableError(f'{file}: no such file (given as the pretrained weights of {variant})')
    if is_mindspore_checkpoint(path):
        ms_variant = MINDSPORE_PREFIX + variant
        model = ms_variant if not variant.startswith(MINDSPORE_PREFIX) and is_model(ms_variant) else variant
        name = f'{model}.{tag}' if tag else model
        raise WeightsUnavailableError(
            f'{file}: a MindSpore checkpoint, which timm cannot load; convert it first:\n'
            + _convert_then_load(file, name))


def check_pretrained_source(variant: str, kwargs: Dict[str, Any]) -> None:
    """Fail at once, before timm tries to load them, when the pretrained weights cannot be had.

    * A local file (`pretrained_cfg_overlay=dict(file=...)`) must exist and not be a MindSpore
      checkpoint (which `timm-gcp convert` reads, and timm's loader does not).
    * A release tag loads from its own Hub repo, and from a copy in the local Hub cache published or
      not: for an unpublished tag, whose cfg names no repo, the cached repo is set in `kwargs`'
      `pretrained_cfg_overlay`. Otherwise an unpublished tag, or any tag with HF_HUB_OFFLINE set,
      fails with the authors' links and the conversion command, without the Hub client's retries.
    """
    cfg = resolve_pretrained_cfg(
        variant, pretrained_cfg=kwargs.get('pretrained_cfg'),
        pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay'))
    if cfg.source in ('hf-hub', 'local-dir') or cfg.state_dict is not None:
        return  # a repo or folder named by the user; timm reads its config.json first
    if cfg.file:
        _check_local_file(variant, cfg.tag, cfg.file)
        return
    release = RELEASES.get(f'{variant}.{cfg.tag}')
    if release is None or cfg.url or cfg.hf_hub_id not in (None, release.hub_id):
        return  # not a release, or weights the caller names
    if hub_cached(release.hub_id):
        if not cfg.hf_hub_id:
            overlay = kwargs.get('pretrained_cfg_overlay') or {}
            kwargs['pretrained_cfg_overlay'] = dict(overlay, hf_hub_id=release.hub_id)
        return
    if not release.published:
        raise WeightsUnavailableError(unavailable_message(
            release, f'timm-gcp has not uploaded them to {release.hub_id} (no converted weights are on the Hub yet)'))
    if constants.HF_HUB_OFFLINE:
        raise WeightsUnavailableError(unavailable_message(
            release, f'HF_HUB_OFFLINE is set and the local Hub cache has no copy of {release.hub_id}'))


_FMPN = 'jiangtaoxie/fast-MPN-COV'
_GCPO = 'ZhangLi-CS/GCP_Optimization'
_DC = 'mingzeG/DropCov'
_OPT = 'Sherry1945/GCP_OPT'
# the MindSpore code of the TPAMI'23 ResNets, by method
_TPAMI_CODE = {'isqrt': 'Terror03/GCP-OPT', 'dropcov': 'Sherry1945/Dropcov_mindspore'}
_DC_LINKS = ("the DropCov README's own checkpoint links; the PyTorch DropCov links of the TPAMI'23 README "
             "(Sherry1945/GCP_OPT) for ResNet-34/50 point to GCP_Optimization iSQRT files instead")
_SAME_LINK = "the TPAMI'23 README gives the same Google Drive link for this MindSpore row and its PyTorch row"


def _drive(file_id: str) -> Download:
    return Download('Google Drive', f'https://drive.google.com/open?id={file_id}')


def _drive_file(file_id: str) -> Download:
    return Download('Google Drive', f'https://drive.google.com/file/d/{file_id}/view')


def _baidu(share: str, code: str = '') -> Download:
    return Download('Baidu', f'https://pan.baidu.com/s/{share}', code)


def _fmpn(name: str, top1: float, top5: float, row: str, file: str, drive: str, baidu: str) -> Release:
    # file names: the model_urls of fast-MPN-COV's src/network/mpncovresnet.py
    return Release(name, top1, top5, _FMPN, row, ('isqrt',), (_drive(drive), _baidu(baidu)), file=file)


def _gcpo(name: str, top1: float, top5: float, row: str, baidu: str, code: str, drive: str) -> Release:
    # file names: GCP_Optimization's src/scripts/val/val_download.sh loads '<row>.pth.tar'
    return Release(name, top1, top5, _GCPO, row, ('gcp_opt', 'isqrt'), (_baidu(baidu, code), _drive(drive)),
                   file=f'{row}.pth.tar')


def _tpami(name: str, top1: float, row: str, method: str, drive: str, note: str = '') -> Release:
    return Release(name, top1, None, _OPT, row, ('tpami', method), (_drive_file(drive),),
                   file_format='MindSpore', note=note, code=_TPAMI_CODE[method])


def _dc(name: str, top1: float, row: str, drive: str, note: str = '', use_ema: bool = False) -> Release:
    return Release(name, top1, None, _DC, row, ('dropcov',), (_drive_file(drive),), note=note, use_ema=use_ema)


# an architecture's first release here is its default tag in timm (`release_cfgs`)
RELEASES: Dict[str, Release] = {r.name: r for r in (
    # GCP_Optimization README (CVPR'20): 256-d, and the two 128-d ResNet-50s (_128)
    _gcpo('resnet18_isqrt_d256.gcp_in1k', 75.48, 92.23, 'ResNet18_GCP_LRnorm',
          '1Nr6FH8PUbY60oAOi41pYWQ', 'eje8', '1D4ZmTHJ5dmTTpdL2IA3UJUIm54cF45na'),
    _gcpo('resnet18_isqrt_d256.gcp_lradju_in1k', 74.86, 91.81, 'ResNet18_GCP_LRadju',
          '1LAX4EKZW2SXx_TiOOYQNmQ', 'tci6', '1BnO-zTz_L3zqO9bW4c-YE9Ao0d2qDZuD'),
    _gcpo('resnet18_isqrt_d256.gcp_lrfast_in1k', 72.02, 89.97, 'ResNet18_GCP_LRfast',
          '1PkbvOYPtPGQoaXt5CVeJWA', 'k6f6', '1PkMvpWj6FH1d4RxgNKkqoalt3mqRo9J8'),
    _gcpo('resnet34_isqrt_d256.gcp_in1k', 77.11, 93.33, 'ResNet34_GCP_LRnorm',
          '1T4lKenLGKbrHZrt3cOtDPg', 'bn2d', '15k8roxdmpq8iwasi6Piysh8HK4vlsG_m'),
    _gcpo('resnet34_isqrt_d256.gcp_lradju_in1k', 76.81, 93.04, 'ResNet34_GCP_LRadju',
          '1T2_M2q-WJ8klUomxA0olcA', '4w21', '1C3m6uicOuYoWiqRrt8ZUjgloa6iSLw-Y'),
    _gcpo('resnet34_isqrt_d256.gcp_lrfast_in1k', 73.88, 91.42, 'ResNet34_GCP_LRfast',
          '1EMGIUc60SwWDxyVyMWO1XQ', 'wmky', '1I145XHsrAjfuseIdCqesxK825-FrA6Zj'),
    _gcpo('resnet50_isqrt_d256.gcp_in1k', 78.56, 94.09, 'ResNet50_GCP_LRnorm',
          '1gZ6_KMqfUBAjq913zKOPkw', 'e7iy', '1TmnusKSArjKTTb28cnw2OzrUVc_DAi98'),
    _gcpo('resnet50_isqrt_d256.gcp_lradju_in1k', 78.03, 93.95, 'ResNet50_GCP_LRadju',
          '1PGLAKzNuQRkqtjygYov90w', 'n4vq', '1t2j5LNLr51TZ3O1QtYmgRyPe8zDSg9yr'),
    _gcpo('resnet50_isqrt_d256.gcp_lrfast_in1k', 75.31, 92.11, 'ResNet50_GCP_LRfast',
          '1Qg-_jms3AChBw9ZXwl31Qw', '3j8e', '1at9nxW658Yeh-jqCUc544ex4_j_iA2VJ'),
    _gcpo('resnet101_isqrt_d256.gcp_in1k', 79.47, 94.71, 'ResNet101_GCP_LRnorm',
          '1UVxS_HRrcFUZnYXKEoBU6A', 'kr4s', '1y8oI2IodJuG7R_gIdrYoXSTPafmszwMh'),
    _gcpo('resnet101_isqrt_d256.gcp_lradju_in1k', 79.18, 94.47, 'ResNet101_GCP_LRadju',
          '1GzT6IgwdhkFVwSfisl7j_w', 'ytfb', '17lNCi6r8CXHM6-Z8Q7YckRReeZXsRQwQ'),
    _gcpo('resnet101_isqrt_d256.gcp_lrfast_in1k', 76.38, 92.82, 'ResNet101_GCP_LRfast',
          '1ubrAmWAIXKc_Yhia2jUeRA', 'iy77', '1iLAV7Hu3jWTRINJ6wRumqkReZEpqubHr'),
    _gcpo('resnet50_isqrt.gcp_in1k', 78.02, 94.02, 'ResNet50_GCP_LRnorm_128',
          '1FZV-_8lHFzK4_j8_AZna3g', '976a', '1taR2AvNC32YnF9ge4To30JUVa4SNq62g'),
    _gcpo('resnet50_isqrt.gcp_lradju_in1k', 77.72, 93.73, 'ResNet50_GCP_LRadju_128',
          '1GxiLO3RTBZoV-3IfIZnupQ', 'xf7g', '1t6r70Vx4J7ev6Lhm0SAalptyF3gQ_5Qk'),
    # fast-MPN-COV README, "reproduce" column (error rates converted to accuracy)
    _fmpn('resnet50_isqrt_d256.fmpn_in1k', 78.29, 93.87, 'fast MPN-COV-ResNet50, reproduce',
          'mpncovresnet50-15991845.pth', '19TWen7p9UDyM0Ueu9Gb22NtouR109C6j', '17TxANPJg_j2VyYgXV05OOQ'),
    _fmpn('resnet101_isqrt_d256.fmpn_in1k', 79.01, 94.44, 'fast MPN-COV-ResNet101, reproduce',
          'mpncovresnet101-ade9737a.pth', '1riur7v3rZ7vnrdj2UZ7EBaTKEGSccYwg', '1_H8MosgzPH0BBmlKw2sr5A'),
    # GCP_Optimization README, MobileNetV2 (256-d and _128) and ShuffleNetV2 x1.0 GCP rows
    _gcpo('mobilenetv2_100_isqrt_d256.gcp_in1k', 74.39, 91.86, 'MobileNetV2_GCP_LRnorm',
          '1cdCpSV8Md6faxkUt7v-tDQ', '3r9q', '18OpYWyBUGqSIiY4m0BqKsHNo22IuNB80'),
    _gcpo('mobilenetv2_100_isqrt_d256.gcp_lrfast_in1k', 72.45, 90.51, 'MobileNetV2_GCP_LRfast',
          '1seBLgrtT9gnLgEJk80hbJA', 'dq5w', '1VHTcaoZU-IoeQlflbpPZJrmlP79vgMYF'),
    _gcpo('mobilenetv2_100_isqrt_d256.gcp_lradju_in1k', 73.97, 91.53, 'MobileNetV2_GCP_LRadju',
          '1HBacuaQ_8qbBaZFSJhn20Q', 'i7y3', '1b77p7IkLVMGKcvBb2p7tHgjr_I6tZjWh'),
    _gcpo('mobilenetv2_100_isqrt.gcp_in1k', 73.28, 91.26, 'MobileNetV2_GCP_LRnorm_128',
          '1egJRYtCmMTNnz5uhy5KvGg', 'cxhu', '1D5ab0tRhIWvFsV9vR67-GQtnen71MFmB'),
    _gcpo('mobilenetv2_100_isqrt.gcp_lradju_in1k', 72.58, 90.87, 'MobileNetV2_GCP_LRadju_128',
          '1WcOX5fKaGGDIcM6zTqL8fw', '3qdx', '1ZSZBIgknAOX3oC0sx6gsfbmMEV0gFKJ4'),
    _gcpo('shufflenetv2_100_isqrt_d256.gcp_in1k', 71.83, 90.04, 'ShuffleNetV2_GCP_LRnorm',
          '18_RE34Y0j7vxSXeyIY5dmA', 'tr5u', '1fEOyjZrXdcGuXvj8l0XwYCdt5uQx6fAM'),
    _gcpo('shufflenetv2_100_isqrt_d256.gcp_lrfast_in1k', 70.29, 89.00, 'ShuffleNetV2_GCP_LRfast',
          '1Eg4Gu3-qmqnzWxGjlJyfsA', '8qxx', '1-r46jSo8qooPeQdymyToaL3pQNTmOHtr'),
    _gcpo('shufflenetv2_100_isqrt_d256.gcp_lradju_in1k', 71.17, 89.74, 'ShuffleNetV2_GCP_LRadju',
          '1rEPaU7Cyv8O1DUdHyFrW7Q', 'nud1', '1P-RlJat6XL7BxD5oCDz_ifKDq7NNRYqj'),
    # TPAMI'23 project page, "Results with Mindspore" (the same numbers as Terror03/GCP-OPT's README)
    _tpami('ms_resnet18_isqrt.tpami_in1k', 74.64, 'ResNet-18+Fast-MPN(Ours)', 'isqrt',
           '1kpBpbYpWQfSzSav7v8Ms7dn1SaUlOlMk'),
    _tpami('ms_resnet34_isqrt.tpami_in1k', 76.27, 'ResNet-34+Fast-MPN(Ours)', 'isqrt',
           '1T0YCzz-A-V2GI1tjihCHIjug93nFSQ91', _SAME_LINK),
    _tpami('ms_resnet50_isqrt.tpami_in1k', 77.71, 'ResNet-50+Fast-MPN(Ours)', 'isqrt',
           '1aF-By_pMhbCu82Gl73sFyz4qlNS25ayJ', _SAME_LINK),
    _tpami('ms_resnet18_dropcov.tpami_in1k', 73.8, 'ResNet-18+Drop-COV(Ours)', 'dropcov',
           '1zVDDmmQWQ-CDDoxjaolkcjI3MACE-rxx'),
    _tpami('ms_resnet34_dropcov.tpami_in1k', 76.13, 'ResNet-34+Drop-COV(Ours)', 'dropcov',
           '1-gvogrLlRSnpzigvevLPV1GKAHF0vr2K'),
    _tpami('ms_resnet50_dropcov.tpami_in1k', 77.77, 'ResNet-50+Drop-COV(Ours)', 'dropcov',
           '1PBy8evHi-xiJHiTWgqrUs8jTH58hJM2n'),
    # DropCov README (NeurIPS'22), PyTorch ResNets
    _dc('resnet34_dropcov.dc_in1k', 76.81, 'ResNet-34+DropCov(Ours)', '1rAK-u85tYxhodTDBV_QuIjXFlxz7Ul2t', _DC_LINKS),
    _dc('resnet50_dropcov.dc_in1k', 78.19, 'ResNet-50+DropCov(Ours)', '1235CUjS7va_h6weWQeAwFZ_J1iOqmaDm', _DC_LINKS),
    _dc('resnet101_dropcov.dc_in1k', 79.51, 'ResNet-101+DropCov(Ours)', '1KJyAUXu11GFz6uLS1kGyZc1JM-pi-E37'),
    # DropCov README, vision transformers (its "DeiT-S" and "T2T-ViT-14" use the SoT DenseNet tokenizer);
    # timm-style checkpoints whose evaluation loads the EMA weights
    _dc('vit_dropcov_small.dc_in1k', 82.4, 'DeiT-S+DropCov(Ours)', '1Ziw9dRvainxIQlq_9htZ58inr6nRsPmx',
        use_ema=True),
    _dc('vit_dropcov_t2t_14.dc_in1k', 82.7, 'T2T-ViT-14-S+DropCov(Ours)', '1KQmJ7cZjDPy4WOmOGAPGr9wbBWaQGNPo',
        use_ema=True),
)}


def release_cfgs(make_cfg: Callable[..., Dict[str, Any]], *archs: str) -> Dict[str, Dict[str, Any]]:
    """The pretrained cfgs of the releases of `archs`, `arch.tag` -> `make_cfg(<paper and code>[, hf_hub_id])`.

    Only a published release names its Hub repo (`hf_hub_id`): timm lists a tag as pretrained
    (`timm.list_pretrained`) when its cfg says where weights are, and an unpublished tag has none to
    load. In `RELEASES` order: timm's default tag of an architecture is its first published release,
    else its first release. An architecture without a release raises a ValueError.
    """
    cfgs = {
        name: make_cfg(**(dict(hf_hub_id=rel.hub_id) if rel.published else {}),
                       **pretrained_fields(rel.papers[0], rel.code))
        for name, rel in RELEASES.items() if split_model_name_tag(name)[0] in archs
    }
    without = set(archs) - {split_model_name_tag(name)[0] for name in cfgs}
    if without:
        raise ValueError(f"no release of {', '.join(sorted(without))} in RELEASES")
    return cfgs
