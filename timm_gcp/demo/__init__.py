"""`timm-gcp demo`: a GCP ResNet and its average-pooling twin trained side by side on Fashion-MNIST.

`side_by_side` trains and plots (it needs the `[demo]` extra: matplotlib, tqdm); the loop and the
data are `timm_gcp.training`'s, the probes `timm_gcp.analysis`'.
"""
