"""Covariance pooling heads for transformer tokens (B x N x C).

Two forms, each with the class token's own classifier and the two logits summed
(`logits = cls_fc(cls token) + visual_fc(pooled patch tokens)`, the 'sum_fc' fusion):

* `pool='cov'`, So-ViT (Xie et al., arXiv:2104.10935 v1): the patch tokens, seen as a C x N x 1 map,
  go through `GCPPool` (1x1 reduction + BN + ReLU to `dim`, centred covariance, iSQRT-COV, upper
  triangle), `dim(dim+1)/2` values.
* `pool='crosscov'`, the multi-head cross-covariance pooling of SoT ("MGCrP", Xie et al. 2021) and of
  the DropCov ViTs (Wang et al., NeurIPS 2022): per head h, Q_h = X W_q,h and K_h = X W_k,h
  (N x r), S_h = (Q_h - mean Q_h)^T (K_h - mean K_h) / N, where each mean is ONE scalar over all
  tokens and dims of the head (the original's `adaptive_avg_pool2d` on a 3-D tensor). S_h is not
  symmetric, so all r^2 entries are kept, heads concatenated: `heads * r^2` values. Options:
  svPN (SoT's one-step power-iteration singular value power normalization), token dropout
  (DropCov: whole tokens of a head dropped, the same mask on Q and K).

Either pooling is followed by dropout on its entries (`drop`: DropCov-ViT 0.5, SoT-S/B 0.5/0.7).
Formulas: docs/methods.md, "Token heads". The matrix work runs in float32 (float64 stays float64)
whatever the autocast state.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import get_device_dtype, register_notrace_function, register_notrace_module

from ._checks import check_float, check_int, check_rank, check_rate, check_square, compute_dtype, no_autocast
from .head import make_fc, reset_pool_type, check_pool_type
from .pool import GCP_NORMS, GCPPool, check_not_wider

TOKEN_POOLS = ('cov', 'crosscov')
CROSSCOV_NORMS = ('svpn', 'none')


# --- functional forms ---------------------------------------------------------------------------------

def _cross_cov(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    n = q.shape[1]
    q = q - q.mean(dim=(1, 2), keepdim=True)
    k = k - k.mean(dim=(1, 2), keepdim=True)
    return torch.bmm(q.transpose(1, 2), k) / n


def cross_covariance(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Cross-covariance (1/N) Q~^T K~ of B x N x r token projections, B x r x r (not symmetric).

    As in SoT / DropCov-ViT, each of Q and K is centred by ONE scalar per batch item (the mean over
    all N tokens and r dims), not per dimension. Runs in float32 whatever the autocast state.
    """
    check_float(q, 'q')
    check_float(k, 'k')
    check_rank(q, 3, 'q', 'B x N x r')
    check_rank(k, 3, 'k', 'B x N x r')
    if q.shape != k.shape:
        raise ValueError(f'q and k must have the same shape, got {tuple(q.shape)} and {tuple(k.shape)}')
    with no_autocast(q):
        dtype = compute_dtype(q)
        return _cross_cov(q.to(dtype), k.to(dtype))


def _svpn(s: torch.Tensor, v0: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    v = v0.to(s.dtype).reshape(1, -1, 1).expand(s.shape[0], -1, -1)
    u = F.normalize(torch.bmm(s, v), dim=1)
    v = F.normalize(torch.bmm(s.transpose(1, 2), u), dim=1)
    sigma = torch.bmm(torch.bmm(u.transpose(1, 2), s), v)
    rank1 = torch.bmm(u, v.transpose(1, 2))
    # sigma >= 0 by construction; the floor only keeps d sigma^alpha / d sigma finite at an all-zero S
    sigma_pos = sigma.clamp_min(1e-30)
    return rank1 * sigma_pos.pow(alpha) + (s - rank1 * sigma) / (sigma_pos.pow(1.0 - alpha) + eps)


def svpn(s: torch.Tensor, v0: torch.Tensor, alpha: float = 0.5, eps: float = 1e-5) -> torch.Tensor:
    """SoT's singular value power normalization of B x r x r matrices, one power-iteration step.

    From the start vector `v0` (length r): u = normalize(S v0), v = normalize(S^T u), s = u^T S v;
    returns u s^alpha v^T + (S - u s v^T) / (s^(1 - alpha) + eps), the original's formula with
    svNum=1, iterNum=1 (the eps matters for matching its logits). Runs in float32 under autocast.
    """
    check_square(s, 's')
    check_float(v0, 'v0')
    if v0.ndim != 1 or v0.shape[0] != s.shape[-1]:
        raise ValueError(f'v0 must be a vector of length {s.shape[-1]}, got shape {tuple(v0.shape)}')
    with no_autocast(s):
        return _svpn(s.to(compute_dtype(s)), v0, alpha, eps)


def token_drop_mask(
        batch: int,
        num_tokens: int,
        rate: float,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """Keep-mask of shape batch x num_tokens x 1: each token kept with probability 1 - rate, scaled 1 / (1 - rate).

    This is what DropCov-ViT's `nn.Dropout2d(rate)` on a (B*heads, N, r) tensor of ones does (a 3-D
    input is read as (N, C, L), so whole tokens are dropped), without relying on that deprecated
    behaviour of Dropout2d.
    """
    keep = 1.0 - rate
    mask = torch.empty(batch, num_tokens, 1, device=device, dtype=dtype).bernoulli_(keep)
    return mask / keep


# --- module forms -------------------------------------------------------------------------------------

@register_notrace_module  # shape- and autocast-dependent Python: FX keeps it a leaf
class SvPN(nn.Module):
    """Module form of `svpn` with SoT's learnable start vector `weight` (length `dim`, randn init)."""

    def __init__(self, dim: int, alpha: float = 0.5, eps: float = 1e-5, device=None, dtype=None) -> None:
        super().__init__()
        self.alpha = alpha
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return _svpn(s.to(compute_dtype(s)), self.weight, self.alpha, self.eps)
        return svpn(s, self.weight, self.alpha, self.eps)

    def extra_repr(self) -> str:
        return f'dim={self.weight.shape[0]}, alpha={self.alpha}'


@register_notrace_module
class MultiHeadCrossCovPool(nn.Module):
    """Multi-head cross-covariance pooling of SoT / DropCov-ViT: B x N x C tokens to B x heads*dim^2.

    `wr` (Linear, no bias) projects to [Q heads | K heads] (`qk_chunks=2`, SoT) or
    [Q heads | K heads | unused] (`qk_chunks=3`, the layout of the published DropCov-ViT weights).
    In training, tokens are dropped per head at rate `token_drop` (one mask for Q and K).
    """

    def __init__(
            self,
            in_features: int,
            heads: int = 6,
            dim: int = 24,
            qk_chunks: int = 2,
            norm: str = 'none',
            token_drop: float = 0.0,
            device=None,
            dtype=None,
    ) -> None:
        """
        Args:
            in_features: Token width C.
            heads: Number of heads.
            dim: Per-head projection width r (each head gives an r x r matrix).
            qk_chunks: 2 (Q, K) or 3 (Q, K and an unused third block, as DropCov-ViT's checkpoints).
            norm: 'svpn' (SoT) or 'none' (DropCov-ViT).
            token_drop: Token dropout rate in training (DropCov-ViT: 0.2).
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        check_int(in_features, 'in_features', 1)
        check_int(heads, 'heads', 1)
        check_int(dim, 'dim', 1)
        if qk_chunks not in (2, 3):
            raise ValueError(f'qk_chunks must be 2 (Q, K) or 3 (Q, K, unused), got {qk_chunks!r}')
        if norm not in CROSSCOV_NORMS:
            raise ValueError(f'unknown cross-covariance norm {norm!r}, expected one of {CROSSCOV_NORMS}')
        check_rate(token_drop, 'token_drop')
        self.in_features = in_features
        self.heads = heads
        self.dim = dim
        self.qk_chunks = qk_chunks
        self.token_drop = float(token_drop)
        self.out_features = heads * dim * dim

        self.wr = nn.Linear(in_features, qk_chunks * heads * dim, bias=False, **dd)
        self.norm = SvPN(dim, **dd) if norm == 'svpn' else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        h, r = self.heads, self.dim
        qk = self.wr(x).reshape(B, N, self.qk_chunks, h, r).permute(2, 0, 3, 1, 4)
        q = qk[0].reshape(B * h, N, r)
        k = qk[1].reshape(B * h, N, r)
        if self.training and self.token_drop > 0.0:
            mask = token_drop_mask(B * h, N, self.token_drop, device=x.device, dtype=q.dtype)
            q = q * mask
            k = k * mask
        if torch.jit.is_scripting():
            s = _cross_cov(q.to(compute_dtype(q)), k.to(compute_dtype(k)))
        else:
            s = cross_covariance(q, k)
        return self.norm(s).reshape(B, self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return (f'heads={self.heads}, dim={self.dim}, qk_chunks={self.qk_chunks}, '
                f'token_drop={self.token_drop}')


@register_notrace_function
def check_token_head_input(cls_token: torch.Tensor, patch_tokens: torch.Tensor, in_features: int) -> None:
    """Raise a ValueError unless `cls_token` is B x C and `patch_tokens` is B x N x C (N >= 2), C = in_features.

    One patch token is refused: its covariance is zero, so the output would not depend on the image.
    """
    if patch_tokens.ndim != 3:
        raise ValueError(f'patch tokens must be 3-D (B x N x C), got shape {tuple(patch_tokens.shape)}')
    if patch_tokens.shape[1] < 2:
        raise ValueError(
            f'the token GCP head needs at least 2 patch tokens, got {patch_tokens.shape[1]} (shape '
            f'{tuple(patch_tokens.shape)}): a covariance over one token says nothing about the image (zero for '
            f"pool='cov'); the input image needs at least 2 patches, e.g. img_size=32 at patch size 16")
    if patch_tokens.shape[2] != in_features:
        raise ValueError(
            f'the token GCP head expects tokens of width {in_features}, got {patch_tokens.shape[2]} '
            f'(shape {tuple(patch_tokens.shape)})')
    if cls_token.ndim != 2 or cls_token.shape[1] != in_features or cls_token.shape[0] != patch_tokens.shape[0]:
        raise ValueError(
            f'the class token must be B x {in_features} with B = {patch_tokens.shape[0]}, '
            f'got shape {tuple(cls_token.shape)}')


def _token_pool(
        in_features: int,
        pool: str = 'cov',
        dim: int = 128,
        norm: Optional[str] = None,
        iters: Optional[int] = None,
        heads: Optional[int] = None,
        qk_chunks: Optional[int] = None,
        token_drop: Optional[float] = None,
        expand: bool = False,
        device=None,
        dtype=None,
) -> nn.Module:
    """The patch-token pooling of `TokenGCPHead`, its settings checked against the pooling they belong to."""
    dd = {'device': device, 'dtype': dtype}
    if pool not in TOKEN_POOLS:
        raise ValueError(f'unknown token pooling {pool!r}, expected one of {TOKEN_POOLS}')
    if pool == 'cov':
        crosscov_only = dict(heads=heads, qk_chunks=qk_chunks, token_drop=token_drop)
        given = [k for k, v in crosscov_only.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to pool='crosscov', not pool='cov'")
        norm = 'isqrt' if norm is None else norm
        if norm not in GCP_NORMS:
            raise ValueError(f"unknown norm {norm!r} for pool='cov', expected one of {GCP_NORMS}")
        return GCPPool(in_features, dim=dim, norm=norm, iters=iters, expand=expand, input_fmt='NLC', **dd)
    if iters is not None:
        raise ValueError(f"iters={iters!r} is the Newton-Schulz iteration count of pool='cov' with norm='isqrt', "
                         f"and means nothing for pool='crosscov'")
    norm = 'none' if norm is None else norm
    if norm not in CROSSCOV_NORMS:
        raise ValueError(f"unknown norm {norm!r} for pool='crosscov', expected one of {CROSSCOV_NORMS}")
    if dim == 0:
        raise ValueError("dim=0 (no reduction) is a setting of pool='cov'; pool='crosscov' projects every head to "
                         "dim channels, so its dim must be >= 1")
    check_int(dim, 'dim', 1)
    heads, qk_chunks = 6 if heads is None else heads, 2 if qk_chunks is None else qk_chunks
    check_not_wider(dim, in_features, expand,
                    f'{qk_chunks * heads * dim * in_features:,} in the projection and {heads * dim * dim + 1:,} per '
                    f'class in the classifier')
    return MultiHeadCrossCovPool(
        in_features,
        heads=heads,
        dim=dim,
        qk_chunks=qk_chunks,
        norm=norm,
        token_drop=0.0 if token_drop is None else token_drop,
        **dd,
    )


class TokenGCPHead(nn.Module):
    """Class-token classifier plus a covariance-pooled patch-token classifier, logits summed.

    `forward(cls_token, patch_tokens)`: B x C and B x N x C to B x num_classes. The pre-logits
    (`pre_logits=True`, or `num_classes=0`) are [cls token, pooled vector], B x (C + K), on which the
    summed logits are one linear map. Pooling: `representation` (`GCPPool` on tokens or
    `MultiHeadCrossCovPool`); classifiers: `cls_fc` (C -> classes), `visual_fc` (K -> classes).
    With `pool_type=''` the head has neither and passes [cls token, patch tokens] through, B x (1 + N) x C.
    """

    def __init__(
            self,
            in_features: int,
            num_classes: int = 1000,
            pool_type: str = 'gcp',
            drop: float = 0.0,
            drop_rate: float = 0.0,
            device=None,
            dtype=None,
            **pool_kwargs,
    ) -> None:
        """
        Args:
            in_features: Token width C.
            num_classes: Classifier outputs; 0 returns the pre-logits [cls token, pooled vector].
            pool_type: 'gcp', or '' to pass the tokens through unpooled (requires num_classes=0).
            drop: Dropout on the pooled matrix entries in training.
            drop_rate: Dropout on the pre-logits before the classifiers.
            **pool_kwargs: The patch-token pooling, kept to rebuild it in `reset`:
                pool: 'cov' (So-ViT iSQRT-COV of reduced patch tokens, default) or 'crosscov' (SoT / DropCov-ViT).
                dim: Side of the pooled matrices: `GCPPool`'s dim ('cov', default 128; 0: no reduction), the
                    per-head width ('crosscov', >= 1). Wider than the tokens only with `expand`.
                norm: 'cov': 'isqrt' (default), 'mpn' or 'none'; 'crosscov': 'none' (default) or 'svpn'.
                iters: Newton-Schulz iterations of 'cov' with 'isqrt' (None: 5); an error elsewhere.
                heads: 'crosscov' heads (default 6).
                qk_chunks: 'crosscov' projection blocks, 2 (default) or 3 (DropCov-ViT checkpoints).
                token_drop: 'crosscov' token dropout rate in training (default 0).
                expand: Allow a `dim` wider than the tokens (more parameters, no more rank).
        """
        super().__init__()
        check_int(in_features, 'in_features', 1)
        check_pool_type(pool_type, num_classes)
        check_rate(drop, 'drop')
        check_rate(drop_rate, 'drop_rate')
        self.in_features = in_features
        self.pool_type = pool_type
        self.pool_kwargs = pool_kwargs
        self.num_classes = num_classes
        self.pool_drop = nn.Dropout(drop)
        self.drop = nn.Dropout(drop_rate)
        self._make_layers(device=device, dtype=dtype)

    def _make_layers(self, device=None, dtype=None) -> None:
        """The pooling and both classifiers for the current pool type, width and classes."""
        dd = {'device': device, 'dtype': dtype}
        if self.pool_type:
            self.representation = _token_pool(self.in_features, **self.pool_kwargs, **dd)
            pooled = self.representation.out_features
        else:
            self.representation, pooled = nn.Identity(), 0
        self.num_features = self.in_features + pooled
        self._make_fcs(**dd)

    def _make_fcs(self, device=None, dtype=None) -> None:
        num_classes = self.num_classes if self.pool_type else 0
        self.cls_fc = make_fc(self.in_features, num_classes, device=device, dtype=dtype)
        self.visual_fc = make_fc(self.num_features - self.in_features, num_classes, device=device, dtype=dtype)

    def reset(
            self,
            num_classes: int,
            pool_type: Optional[str] = None,
            in_features: Optional[int] = None,
            device=None,
            dtype=None,
    ) -> None:
        """Replace both classifiers (0: none), as `GCPHead.reset`.

        The pooling keeps its weights and frozen state unless `pool_type` or `in_features` changes it:
        `pool_type=''` removes it, None keeps it, and a classifier on unpooled tokens brings a new pooling
        back; a new `in_features` builds a new pooling for that width. New layers take `device` / `dtype`,
        by default those of the head's parameters.
        """
        dd = get_device_dtype(self, device, dtype)
        pool_type = reset_pool_type(self.pool_type, pool_type, num_classes)
        in_features = self.in_features if in_features is None else in_features
        self.num_classes = num_classes
        if pool_type != self.pool_type or in_features != self.in_features:
            self.pool_type, self.in_features = pool_type, in_features
            self._make_layers(**dd)
            self.representation.train(self.training)
        else:
            self._make_fcs(**dd)
        self.cls_fc.train(self.training)
        self.visual_fc.train(self.training)

    def forward(self, cls_token: torch.Tensor, patch_tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.pool_type:
            return torch.cat([cls_token.unsqueeze(1), patch_tokens], dim=1)
        if not torch.jit.is_scripting():
            check_token_head_input(cls_token, patch_tokens, self.in_features)
        rep = self.drop(self.pool_drop(self.representation(patch_tokens)))
        cls_token = self.drop(cls_token)
        if pre_logits or self.num_classes <= 0:
            return torch.cat([cls_token, rep.to(cls_token.dtype)], dim=1)
        return self.cls_fc(cls_token) + self.visual_fc(rep)
