"""Pretrained-cfg fields (paper, repository, license) of a source that both model families cite: DropCov."""

DROPCOV_PAPER = dict(
    paper_ids='https://openreview.net/forum?id=QLGuUwDx4S', origin_url='https://github.com/mingzeG/DropCov',
    paper_name='DropCov: A Simple yet Effective Method for Improving Deep Architectures',
)
DROPCOV_WEIGHTS = dict(DROPCOV_PAPER, license='unknown')  # the DropCov repository and its weights carry no license
