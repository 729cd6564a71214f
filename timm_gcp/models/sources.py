"""Where every model comes from: papers, source repositories and their licenses.

One place for the facts that the pretrained cfgs (`paper_ids`, `paper_name`, `origin_url`,
`license`), the model cards and the tests cite. What the authors released per `arch.tag` (weights,
links, accuracies) is in `timm_gcp.models.releases`.
"""
from dataclasses import dataclass
from typing import Dict

__all__ = ['PAPERS', 'REPOS', 'Repo', 'pretrained_fields']


@dataclass(frozen=True)
class Repo:
    """A source repository of code, weights or published numbers."""
    url: str
    license: str  # of the repository's code ('unknown' without a license file); no repository licenses its weights


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
    """The pretrained-cfg fields naming a model's paper and the repository its code (and weights) come from.

    `license` is the weights' license, which none of the authors states: 'unknown' (docs/checkpoints.md,
    "Pitfalls"). The repository's code license (`Repo.license`) is not theirs to claim for the weights.
    """
    return dict(
        paper_ids=PAPERS[paper]['paper_id'] or None,
        paper_name=PAPERS[paper]['title'],
        origin_url=REPOS[repo].url,
        license='unknown',
    )
