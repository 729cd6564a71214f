"""Where every model and weight comes from: papers, source repositories, licenses, published results.

One place for the facts that the pretrained cfgs (`paper_ids`, `paper_name`, `origin_url`,
`license`), the model cards, the README model table and the tests cite. Published accuracies are
quoted from the source repositories' READMEs (docs/checkpoints.md, "Published results"): 224 px,
single centre crop, ImageNet-1k validation; top-5 where the source gives it. They are the authors'
claims for the original weights, not measurements of the converted ones.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = ['PAPERS', 'PUBLISHED_RESULTS', 'REPOS', 'PublishedResult', 'Repo', 'pretrained_fields']


@dataclass(frozen=True)
class Repo:
    """A source repository of code, weights or published numbers."""
    url: str
    license: str  # the repository's ('unknown' without a license file); none licenses its weights apart


# repository -> URL and license (the GCP_Optimization, DropCov and MindSpore repositories carry no license file)
REPOS: Dict[str, Repo] = {
    'jiangtaoxie/MPN-COV': Repo('https://github.com/jiangtaoxie/MPN-COV', 'mit'),
    'jiangtaoxie/fast-MPN-COV': Repo('https://github.com/jiangtaoxie/fast-MPN-COV', 'mit'),
    'ZhangLi-CS/GCP_Optimization': Repo('https://github.com/ZhangLi-CS/GCP_Optimization', 'unknown'),
    'mingzeG/DropCov': Repo('https://github.com/mingzeG/DropCov', 'unknown'),
    'Terror03/GCP-OPT': Repo('https://github.com/Terror03/GCP-OPT', 'unknown'),
    'Sherry1945/Dropcov_mindspore': Repo('https://github.com/Sherry1945/Dropcov_mindspore', 'unknown'),
    'Sherry1945/GCP_OPT': Repo('https://github.com/Sherry1945/GCP_OPT', 'unknown'),
    'jiangtaoxie/SoT': Repo('https://github.com/jiangtaoxie/SoT', 'unknown'),  # no license file (setup.py: Apache)
}

# paper key -> title, venue, link ('' if none), timm's paper id ('' if none), BibTeX
PAPERS: Dict[str, Dict[str, str]] = {
    'mpncov': dict(
        title='Is Second-order Information Helpful for Large-scale Visual Recognition?',
        venue='ICCV 2017',
        url='https://arxiv.org/abs/1703.08050',
        paper_id='arXiv:1703.08050',
        bibtex='',
    ),
    'isqrt': dict(
        title='Towards Faster Training of Global Covariance Pooling Networks by Iterative Matrix Square Root '
              'Normalization',
        venue='CVPR 2018',
        url='https://arxiv.org/abs/1712.01034',
        paper_id='arXiv:1712.01034',
        bibtex='''@inproceedings{li2018towards,
  title={Towards Faster Training of Global Covariance Pooling Networks by Iterative Matrix Square Root Normalization},
  author={Li, Peihua and Xie, Jiangtao and Wang, Qilong and Gao, Zilin},
  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2018}
}''',
    ),
    'gcp_opt': dict(
        title='What Deep CNNs Benefit from Global Covariance Pooling: An Optimization Perspective',
        venue='CVPR 2020',
        url='https://arxiv.org/abs/2003.11241',
        paper_id='arXiv:2003.11241',
        bibtex='''@inproceedings{wang2020deep,
  title={What Deep CNNs Benefit from Global Covariance Pooling: An Optimization Perspective},
  author={Wang, Qilong and Zhang, Li and Wu, Banggu and Ren, Dongwei and Li, Peihua and Zuo, Wangmeng and Hu, Qinghua},
  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2020}
}''',
    ),
    'dropcov': dict(
        title='DropCov: A Simple yet Effective Method for Improving Deep Architectures',
        venue='NeurIPS 2022',
        url='https://papers.nips.cc/paper_files/paper/2022/hash/d9888cc7baa04c2e44e8115588133515-Abstract-Conference.html',
        paper_id='https://openreview.net/forum?id=QLGuUwDx4S',
        bibtex='''@inproceedings{wang2022dropcov,
  title={DropCov: A Simple yet Effective Method for Improving Deep Architectures},
  author={Wang, Qilong and Gao, Mingze and Zhang, Zhaolin and Xie, Jiangtao and Li, Peihua and Hu, Qinghua},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},
  year={2022}
}''',
    ),
    'tpami': dict(
        title='Towards a Deeper Understanding of Global Covariance Pooling in Deep Learning: '
              'An Optimization Perspective',
        venue='IEEE TPAMI 2023',
        url='',
        paper_id='',
        bibtex='''@article{wang2023towards,
  title={Towards a Deeper Understanding of Global Covariance Pooling in Deep Learning: An Optimization Perspective},
  author={Wang, Qilong and Zhang, Zhaolin and Gao, Mingze and Xie, Jiangtao and Zhu, Pengfei and Li, Peihua and Zuo, Wangmeng and Hu, Qinghua},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume={45},
  number={12},
  pages={15802--15819},
  year={2023}
}''',
    ),
    'sovit': dict(
        title='So-ViT: Mind Visual Tokens for Vision Transformer',
        venue='arXiv 2021 (v1)',
        url='https://arxiv.org/abs/2104.10935v1',
        paper_id='arXiv:2104.10935',
        bibtex='',
    ),
    'sot': dict(
        title='SoT: Delving Deeper into Classification Head for Transformer',
        venue='arXiv 2021',
        url='https://arxiv.org/abs/2104.10935',
        paper_id='arXiv:2104.10935',
        bibtex='',
    ),
}


def pretrained_fields(paper: str, repo: str) -> Dict[str, str]:
    """The pretrained-cfg fields naming a model's paper and the repository its code (and weights) come from."""
    return dict(
        paper_ids=PAPERS[paper]['paper_id'] or None,
        paper_name=PAPERS[paper]['title'],
        origin_url=REPOS[repo].url,
        license=REPOS[repo].license,
    )


@dataclass(frozen=True)
class PublishedResult:
    top1: float
    top5: Optional[float]
    source: str  # key of REPOS: the repository whose README reports the numbers
    row: str  # the row of that README's table
    papers: Tuple[str, ...]  # keys of PAPERS, the method's paper first
    note: str = ''


_FMPN = 'jiangtaoxie/fast-MPN-COV'
_GCPO = 'ZhangLi-CS/GCP_Optimization'
_DC = 'mingzeG/DropCov'
_OPT = 'Sherry1945/GCP_OPT'
_DC_LINKS = ("the DropCov README's own checkpoint links; the PyTorch DropCov links of the TPAMI'23 README "
             "(Sherry1945/GCP_OPT) for ResNet-34/50 point to GCP_Optimization iSQRT files instead")


def _fmpn(top1: float, top5: float, row: str) -> PublishedResult:
    return PublishedResult(top1, top5, _FMPN, row, ('isqrt',))


def _gcpo(top1: float, top5: float, row: str) -> PublishedResult:
    return PublishedResult(top1, top5, _GCPO, row, ('gcp_opt', 'isqrt'))


def _tpami(top1: float, row: str, method: str) -> PublishedResult:
    return PublishedResult(top1, None, _OPT, row, ('tpami', method))


def _dc(top1: float, row: str, note: str = '') -> PublishedResult:
    return PublishedResult(top1, None, _DC, row, ('dropcov',), note)


PUBLISHED_RESULTS: Dict[str, PublishedResult] = {
    # fast-MPN-COV README, "reproduce" column (error rates converted to accuracy)
    'resnet50_isqrt_d256.fmpn_in1k': _fmpn(78.29, 93.87, 'fast MPN-COV-ResNet50, reproduce'),
    'resnet101_isqrt_d256.fmpn_in1k': _fmpn(79.01, 94.44, 'fast MPN-COV-ResNet101, reproduce'),
    # GCP_Optimization README (CVPR'20): 256-d, and the two 128-d ResNet-50s (_128)
    'resnet18_isqrt_d256.gcp_in1k': _gcpo(75.48, 92.23, 'ResNet18_GCP_LRnorm'),
    'resnet18_isqrt_d256.gcp_lradju_in1k': _gcpo(74.86, 91.81, 'ResNet18_GCP_LRadju'),
    'resnet18_isqrt_d256.gcp_lrfast_in1k': _gcpo(72.02, 89.97, 'ResNet18_GCP_LRfast'),
    'resnet34_isqrt_d256.gcp_in1k': _gcpo(77.11, 93.33, 'ResNet34_GCP_LRnorm'),
    'resnet34_isqrt_d256.gcp_lradju_in1k': _gcpo(76.81, 93.04, 'ResNet34_GCP_LRadju'),
    'resnet34_isqrt_d256.gcp_lrfast_in1k': _gcpo(73.88, 91.42, 'ResNet34_GCP_LRfast'),
    'resnet50_isqrt_d256.gcp_in1k': _gcpo(78.56, 94.09, 'ResNet50_GCP_LRnorm'),
    'resnet50_isqrt_d256.gcp_lradju_in1k': _gcpo(78.03, 93.95, 'ResNet50_GCP_LRadju'),
    'resnet50_isqrt_d256.gcp_lrfast_in1k': _gcpo(75.31, 92.11, 'ResNet50_GCP_LRfast'),
    'resnet101_isqrt_d256.gcp_in1k': _gcpo(79.47, 94.71, 'ResNet101_GCP_LRnorm'),
    'resnet101_isqrt_d256.gcp_lradju_in1k': _gcpo(79.18, 94.47, 'ResNet101_GCP_LRadju'),
    'resnet101_isqrt_d256.gcp_lrfast_in1k': _gcpo(76.38, 92.82, 'ResNet101_GCP_LRfast'),
    'resnet50_isqrt.gcp_in1k': _gcpo(78.02, 94.02, 'ResNet50_GCP_LRnorm_128'),
    'resnet50_isqrt.gcp_lradju_in1k': _gcpo(77.72, 93.73, 'ResNet50_GCP_LRadju_128'),
    # TPAMI'23 project page, "Results with Mindspore" (the same numbers as Terror03/GCP-OPT's README)
    'ms_resnet18_isqrt.tpami_in1k': _tpami(74.64, 'ResNet-18+Fast-MPN(Ours)', 'isqrt'),
    'ms_resnet34_isqrt.tpami_in1k': _tpami(76.27, 'ResNet-34+Fast-MPN(Ours)', 'isqrt'),
    'ms_resnet50_isqrt.tpami_in1k': _tpami(77.71, 'ResNet-50+Fast-MPN(Ours)', 'isqrt'),
    'ms_resnet18_dropcov.tpami_in1k': _tpami(73.8, 'ResNet-18+Drop-COV(Ours)', 'dropcov'),
    'ms_resnet34_dropcov.tpami_in1k': _tpami(76.13, 'ResNet-34+Drop-COV(Ours)', 'dropcov'),
    'ms_resnet50_dropcov.tpami_in1k': _tpami(77.77, 'ResNet-50+Drop-COV(Ours)', 'dropcov'),
    # DropCov README (NeurIPS'22), PyTorch ResNets
    'resnet34_dropcov.dc_in1k': _dc(76.81, 'ResNet-34+DropCov(Ours)', _DC_LINKS),
    'resnet50_dropcov.dc_in1k': _dc(78.19, 'ResNet-50+DropCov(Ours)', _DC_LINKS),
    'resnet101_dropcov.dc_in1k': _dc(79.51, 'ResNet-101+DropCov(Ours)'),
    # DropCov README, vision transformers (its "DeiT-S" and "T2T-ViT-14" use the SoT DenseNet tokenizer)
    'vit_dropcov_small.dc_in1k': _dc(82.4, 'DeiT-S+DropCov(Ours)'),
    'vit_dropcov_t2t_14.dc_in1k': _dc(82.7, 'T2T-ViT-14-S+DropCov(Ours)'),
}
