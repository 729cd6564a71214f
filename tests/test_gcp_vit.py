"""The ViT GCP family: token heads against independent references, the original SoT / DropCov-ViT
forward and checkpoint layout, parameter counts, token dropout, loading timm's DeiT weights, and the
timm model API (timm's own test suite runs in tests/test_timm_suite.py)."""
from argparse import Namespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import timm
from timm.optim import create_optimizer_v2

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.bench.reference import dense_centring_covariance, plain_newton_schulz
from timm_gcp.layers import (
    GCPPool, MultiHeadCrossCovPool, SvPN, TokenGCPHead, cross_covariance, svpn, token_drop_mask,
)
from timm_gcp.layers import token_heads
from timm_gcp.models.gcp_vit import GCPVisionTransformer, checkpoint_filter_fn, sinusoid_pos_embed
from timm_gcp.models.releases import RELEASES

from tests.helpers.layouts import vit_original
from tests.helpers.weights import randomize

VIT_MODELS = sorted(timm.list_models(module='gcp_vit'))


def _tokens(b=2, n=10, c=12, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, c, generator=g, dtype=dtype)


# --- independent references (plain loops / the original code's literal operations) -----------------------

def _ref_cross_cov(q, k):
    """SoT's Covariance(q, k): adaptive_avg_pool2d on the 3-D transposed tensor (one scalar mean), then (1/N) q^T k."""
    n = q.shape[1]

    def centre(x):
        x = x.transpose(-1, -2)
        return (x - F.adaptive_avg_pool2d(x, (1, 1))).transpose(-1, -2)

    return centre(q).transpose(1, 2).bmm(centre(k)) / n


def _ref_svpn(x, weight, alpha=0.5):
    """svPN(svNum=1, iterNum=1) written out as the original: U, S, V filled for one singular triplet."""
    b, n, d = x.shape
    big_u, big_s, big_v = x.new_zeros(b, n, 1), x.new_zeros(b, 1, 1), x.new_zeros(b, d, 1)
    v = weight.view(1, d, 1).expand(b, d, 1)
    u = F.normalize(x.bmm(v), dim=1)
    v = F.normalize(x.transpose(1, 2).bmm(u), dim=1)
    s = u.transpose(1, 2).bmm(x).bmm(v)
    big_u[:, :, 0], big_s[:, 0, 0], big_v[:, :, 0] = u.squeeze(-1), s.view(-1), v.squeeze(-1)
    rest = x - u.bmm(s).bmm(v.transpose(1, 2))
    return big_u.bmm(big_s.pow(alpha)).bmm(big_v.transpose(1, 2)) + rest / (s.pow(1 - alpha) + 1e-5)


def _ref_multihead(x, wr, heads, r, chunks, mask=None, norm=None):
    """Per-head loop: Q_h / K_h from the row blocks [q heads | k heads | unused] of wr, optional token mask."""
    b, n, _ = x.shape
    out = []
    for i in range(b):
        mats = []
        for h in range(heads):
            q = x[i] @ wr[h * r:(h + 1) * r].T
            k = x[i] @ wr[(heads + h) * r:(heads + h + 1) * r].T
            if mask is not None:
                q, k = q * mask[i * heads + h], k * mask[i * heads + h]
            s = _ref_cross_cov(q[None], k[None])
            if norm is not None:
                s = _ref_svpn(s, norm)
            mats.append(s.reshape(-1))
        out.append(torch.cat(mats))
    return torch.stack(out)


def _ref_sovit_pool(tokens, conv_w, bn, iters):
    """So-ViT: 1x1 conv + BN (eval) + ReLU, dense-centring covariance, plain Newton-Schulz loop, row-major triangle."""
    x = tokens @ conv_w[:, :, 0, 0].T  # B x N x d
    x = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    x = x.relu().transpose(1, 2).unsqueeze(-1)  # B x d x N x 1
    d = x.shape[1]
    out = []
    for y in plain_newton_schulz(dense_centring_covariance(x), iters):
        out.append(torch.stack([y[i, j] for i in range(d) for j in range(i, d)]))
    return torch.stack(out)


def _ref_sinusoid(n_position, d_hid):
    """get_sinusoid_encoding of T2T-ViT / SoT, in numpy as the original."""
    table = np.array([[pos / np.power(10000, 2 * (j // 2) / d_hid) for j in range(d_hid)] for pos in range(n_position)])
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.tensor(table, dtype=torch.float32).unsqueeze(0)


# --- token head math ------------------------------------------------------------------------------------

def test_cross_covariance_uses_one_scalar_mean():
    q, k = _tokens(3, 9, 5), _tokens(3, 9, 5, seed=1) + 0.7
    out = cross_covariance(q, k)
    torch.testing.assert_close(out, _ref_cross_cov(q, k), rtol=1e-12, atol=1e-12)
    per_dim = (q - q.mean(1, keepdim=True)).transpose(1, 2) @ (k - k.mean(1, keepdim=True)) / 9
    assert not torch.allclose(out, per_dim)  # not the per-dimension centring of an ordinary covariance
    assert not torch.allclose(out, out.transpose(1, 2))  # a cross-covariance: not symmetric


def test_svpn_matches_original_and_scaled_matrix():
    s = _tokens(4, 6, 6, seed=2)
    v0 = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(svpn(s, v0), _ref_svpn(s, v0), rtol=1e-10, atol=1e-12)
    # without the eps the formula is S / sqrt(sigma), sigma the one-step power-iteration estimate
    u = F.normalize(s @ v0.view(1, 6, 1), dim=1)
    sigma = (s.transpose(1, 2) @ u).norm(dim=1, keepdim=True)
    torch.testing.assert_close(svpn(s, v0, eps=0.0), s / sigma.sqrt(), rtol=1e-9, atol=1e-12)
    true_sigma = torch.linalg.svdvals(s)[:, :1, None]
    assert (sigma <= true_sigma + 1e-12).all()


def test_svpn_module_uses_its_start_vector():
    norm = SvPN(5).double()
    s = _tokens(2, 5, 5, seed=4)
    torch.testing.assert_close(norm(s), _ref_svpn(s, norm.weight.detach()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('chunks,norm', [(2, 'none'), (3, 'none'), (2, 'svpn')])
def test_multihead_cross_cov_matches_per_head_reference(chunks, norm):
    pool = MultiHeadCrossCovPool(12, heads=3, dim=4, qk_chunks=chunks, norm=norm, token_drop=0.2)
    pool = pool.double().eval()
    x = _tokens(2, 10, 12)
    v0 = pool.norm.weight.detach() if norm == 'svpn' else None
    expected = _ref_multihead(x, pool.wr.weight.detach(), 3, 4, chunks, norm=v0)
    out = pool(x)
    assert out.shape == (2, 3 * 16) == (2, pool.out_features)
    assert (pool.in_features, pool.heads, pool.dim) == (12, 3, 4)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    if chunks == 3:  # DropCov-ViT's third block of wr is dead weight
        with torch.no_grad():
            pool.wr.weight[2 * 12:].normal_()
        torch.testing.assert_close(pool(x), out)


def test_token_dropout_train_and_eval(monkeypatch):
    pool = MultiHeadCrossCovPool(12, heads=3, dim=4, token_drop=0.2).double()
    x = _tokens(2, 10, 12)
    wr = pool.wr.weight.detach()
    plain = _ref_multihead(x, wr, 3, 4, 2)
    pool.eval()
    torch.testing.assert_close(pool(x), plain, rtol=1e-10, atol=1e-12)

    # training: one keep-mask per (image, head) over the tokens, the same for Q and K
    mask = (torch.rand(2 * 3, 10, 1, generator=torch.Generator().manual_seed(5)) > 0.3).double() / 0.8
    calls = []

    def fixed_mask(batch, num_tokens, rate, device=None, dtype=None):
        calls.append((batch, num_tokens, rate))
        return mask.to(dtype)

    monkeypatch.setattr(token_heads, 'token_drop_mask', fixed_mask)
    pool.train()
    torch.testing.assert_close(pool(x), _ref_multihead(x, wr, 3, 4, 2, mask=mask), rtol=1e-10, atol=1e-12)
    assert calls == [(6, 10, 0.2)]
    monkeypatch.undo()
    torch.manual_seed(0)
    first, second = pool(x), pool(x)
    assert not torch.allclose(first, second) and not torch.allclose(first, plain)


def test_token_drop_mask_statistics():
    torch.manual_seed(0)
    mask = token_drop_mask(64, 400, 0.2)
    assert mask.shape == (64, 400, 1)
    dropped = (mask == 0).double().mean().item()
    assert dropped == pytest.approx(0.2, abs=0.01)
    torch.testing.assert_close(mask[mask != 0], torch.full_like(mask[mask != 0], 1 / 0.8))
    assert mask.mean().item() == pytest.approx(1.0, abs=0.02)


def test_token_gcp_pool_matches_sovit_reference():
    """So-ViT's pooling is `GCPPool` on the tokens (input_fmt='NLC'), as TokenGCPHead(pool='cov') builds it."""
    pool = randomize(GCPPool(12, dim=6, iters=5, input_fmt='NLC'), 'all').double()
    tokens = _tokens(2, 20, 12)
    expected = _ref_sovit_pool(tokens, pool.reduce.conv.weight.detach(), pool.reduce.bn, 5)
    out = pool(tokens)
    assert out.shape == (2, 21) == (2, pool.out_features)
    torch.testing.assert_close(out, expected.detach(), rtol=1e-9, atol=1e-10)
    representation = TokenGCPHead(12, pool='cov', dim=6).representation
    assert isinstance(representation, GCPPool) and representation.input_fmt == 'NLC'
    assert (representation.in_features, representation.dim) == (12, 6)


def test_token_head_dropout_acts_on_the_pooled_vector(monkeypatch):
    """`drop` (pool_drop) drops entries of the pooled vector, `drop_rate` (drop) the pre-logits, in training only."""
    head = TokenGCPHead(12, num_classes=0, pool='crosscov', dim=4, heads=3, drop=0.5, drop_rate=0.25)
    assert (head.pool_drop.p, head.drop.p) == (0.5, 0.25)
    cls, patches = torch.randn(2, 12), torch.randn(2, 9, 12)
    rep = head.representation(patches)
    seen = []
    head.pool_drop.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    torch.testing.assert_close(head.eval()(cls, patches), torch.cat([cls, rep], 1))
    head.train()(cls, patches)
    pooled, dropped = seen[-1]
    torch.testing.assert_close(pooled, rep)
    kept = dropped != 0
    assert 0 < kept.sum() < kept.numel()
    torch.testing.assert_close(dropped[kept], 2 * pooled[kept])  # survivors scaled by 1 / (1 - 0.5)


@pytest.mark.parametrize('kwargs', [dict(pool='cov', dim=6), dict(pool='crosscov', dim=4, heads=3, norm='svpn')])
def test_token_head_logits_are_summed_classifiers(kwargs):
    head = randomize(TokenGCPHead(12, num_classes=7, **kwargs), 'all').double()
    cls, patches = _tokens(3, 1, 12)[:, 0], _tokens(3, 15, 12, seed=1)
    logits = head(cls, patches)
    rep = head.representation(patches)
    torch.testing.assert_close(logits, head.cls_fc(cls) + head.visual_fc(rep))
    pre = head(cls, patches, pre_logits=True)
    assert pre.shape == (3, head.num_features) == (3, 12 + head.representation.out_features)
    assert head.in_features == 12
    # the summed logits are one linear map of the pre-logits [cls, rep]
    weight = torch.cat([head.cls_fc.weight, head.visual_fc.weight], dim=1)
    torch.testing.assert_close(logits, pre @ weight.T + head.cls_fc.bias + head.visual_fc.bias)
    head.reset(0)
    torch.testing.assert_close(head(cls, patches), pre)
    head.reset(4)
    assert head(cls, patches).shape == (3, 4) and head.cls_fc.weight.dtype == torch.float64


@pytest.mark.parametrize('kwargs', [
    dict(pool='cov', dim=8), dict(pool='crosscov', dim=4, norm='svpn'), dict(pool='crosscov', dim=4)])
def test_token_head_float32_under_autocast_and_finite_on_degenerate_tokens(kwargs):
    torch.manual_seed(0)
    head = TokenGCPHead(16, num_classes=5, **kwargs).eval()
    cls, patches = torch.randn(2, 16), torch.randn(2, 30, 16)
    ref = head(cls, patches, pre_logits=True)
    # the matrices (covariance / its square root, cross-covariance / svPN) stay float32 under bf16 autocast
    matrix_dtypes = []
    rep = head.representation
    watched = (rep.cov, rep.norm) if kwargs['pool'] == 'cov' else (rep.norm,)
    for module in watched:
        module.register_forward_hook(lambda m, args, out: matrix_dtypes.append((args[0].dtype, out.dtype)))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = head(cls, patches, pre_logits=True)
    assert matrix_dtypes and all(o == torch.float32 for _, o in matrix_dtypes), matrix_dtypes
    # the projections (reduction conv, wr) run in bf16 under autocast: close to float32, not equal
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
    head.train()
    # all tokens zero, two equal tokens (zero covariance), tiny tokens
    for patches in (torch.zeros(2, 30, 16), torch.randn(2, 1, 16).repeat(1, 2, 1), torch.full((2, 4, 16), 1e-20)):
        patches.requires_grad_(True)
        out = head(cls, patches)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(patches.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
        head.zero_grad()


def test_token_head_training_has_no_graph_breaks():
    """The training forward (token and element dropout) never leaves the device: no .item(), no graph break."""
    head = TokenGCPHead(16, num_classes=5, pool='crosscov', dim=4, token_drop=0.2, drop=0.5).train()
    explanation = torch._dynamo.explain(head)(torch.randn(2, 16), torch.randn(2, 9, 16))
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize('kwargs', [dict(pool='cov', dim=6), dict(pool='crosscov', dim=4, norm='svpn', token_drop=0.2)])
def test_token_head_torchscript(kwargs):
    head = TokenGCPHead(12, num_classes=3, **kwargs).eval()
    cls, patches = torch.randn(2, 12), torch.randn(2, 9, 12)
    torch.testing.assert_close(torch.jit.script(head)(cls, patches), head(cls, patches))


def test_token_head_bad_input_and_settings():
    head = TokenGCPHead(12, num_classes=3, pool='crosscov', dim=4)
    for num_tokens in (0, 1):
        with pytest.raises(ValueError, match=f'at least 2 patch tokens, got {num_tokens}'):
            head(torch.randn(2, 12), torch.randn(2, num_tokens, 12))
    with pytest.raises(ValueError, match='tokens of width 12, got 10'):
        head(torch.randn(2, 12), torch.randn(2, 5, 10))
    with pytest.raises(ValueError, match='class token must be B x 12'):
        head(torch.randn(3, 12), torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match='3-D'):
        head(torch.randn(2, 12), torch.randn(2, 12))
    with pytest.raises(ValueError, match="unknown token pooling 'avg'"):
        TokenGCPHead(12, pool='avg')
    with pytest.raises(ValueError, match="unknown norm 'svpn' for pool='cov'"):
        TokenGCPHead(12, pool='cov', norm='svpn')
    with pytest.raises(ValueError, match="unknown norm 'isqrt' for pool='crosscov'"):
        TokenGCPHead(12, pool='crosscov', norm='isqrt')
    with pytest.raises(ValueError, match="heads, token_drop only apply to pool='crosscov'"):
        TokenGCPHead(12, pool='cov', heads=4, token_drop=0.1)
    with pytest.raises(ValueError, match='qk_chunks must be 2'):
        TokenGCPHead(12, pool='crosscov', dim=4, qk_chunks=4)
    with pytest.raises(ValueError, match='token_drop must be a rate'):
        TokenGCPHead(12, pool='crosscov', dim=4, token_drop=1.0)
    with pytest.raises(ValueError, match='drop_rate must be a rate'):
        TokenGCPHead(12, drop_rate=-0.1)
    with pytest.raises(ValueError, match='heads must be >= 1'):
        TokenGCPHead(12, pool='crosscov', dim=4, heads=0)
    with pytest.raises(ValueError, match=r'dim must be 0 \(no reduction\) or >= 2, got 1'):
        TokenGCPHead(12, pool='cov', dim=1)
    with pytest.raises(TypeError, match='dim must be an int'):
        TokenGCPHead(12, pool='crosscov', dim=2.5)
    with pytest.raises(ValueError, match='same shape'):
        cross_covariance(torch.randn(2, 5, 3), torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match='v0 must be a vector of length 4'):
        svpn(torch.randn(2, 4, 4), torch.randn(5))


# --- parameter counts --------------------------------------------------------------------------------------

def _n_params(model, trainable=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def _dense_embed_params(dim):
    """Stem conv (bias), three BN-free dense blocks (6 x [1x1 -> 32, 3x3 -> 16]), transitions (BN + 1x1 -> 128),
    final 1x1 (bias)."""
    total = 3 * 64 * 9 + 64
    chs = 64
    for _ in range(3):
        total += sum((chs + 16 * i) * 32 + 32 * 16 * 9 for i in range(6))
        total += 2 * (chs + 96) + (chs + 96) * 128
        chs = 128
    return total + 128 * dim + dim


def _block_params(dim, mlp_ratio, qkv_bias):
    hidden = int(dim * mlp_ratio)
    return 4 * dim + dim * 3 * dim + (3 * dim if qkv_bias else 0) + dim * dim + dim + 2 * dim * hidden + hidden + dim


def _original_params(dim, depth, mlp_ratio, heads, r, chunks, svpn_norm, classes=1000):
    trunk = _dense_embed_params(dim) + dim + depth * _block_params(dim, mlp_ratio, False) + 2 * dim
    head = dim * chunks * heads * r + (r if svpn_norm else 0) + (heads * r * r + 1) * classes + (dim + 1) * classes
    return trunk + head


def test_published_sizes_from_spec():
    """DropCov-ViT Small and SoT-Small as the original code builds them.

    docs/architectures.md, "SoT and DropCov-ViT trunk".
    """
    dropcov = timm.create_model('vit_dropcov_small', device='meta')
    assert _n_params(dropcov) == 25_586_576
    sot = timm.create_model('vit_sot_small', device='meta')
    assert _n_params(sot) == 27_010_856
    # the fixed sinusoid is a buffer of 197 x 384 (the original's frozen Parameter), not trained
    for model in (dropcov, sot):
        assert model.pos_embed.shape == (1, 197, 384) and 'pos_embed' not in dict(model.named_parameters())
        assert 'pos_embed' in model.state_dict()
    assert not any('norm1' in k or 'norm2' in k for k in dropcov.state_dict() if '.denselayer' in k)


@pytest.mark.parametrize('name,cfg,exact,published', [
    ('vit_sot_tiny', (240, 12, 2.5, 6, 14, 2, True), 7_983_550, 7.99),
    ('vit_sot_small', (384, 14, 3.5, 6, 24, 2, True), 27_010_856, 27.01),
    ('vit_sot_base', (528, 24, 3.0, 6, 38, 2, True), 76_774_966, 76.78),
    ('vit_dropcov_small', (384, 12, 4.0, 6, 24, 3, False), 25_586_576, 25.59),
    ('vit_dropcov_t2t_14', (384, 14, 3.0, 6, 24, 3, False), 24_999_056, 25.01),
])
def test_original_architecture_sizes(name, cfg, exact, published):
    """Trainable parameters as docs/architectures.md ("SoT and DropCov-ViT trunk", "Configurations") counts them."""
    n = _n_params(timm.create_model(name, device='meta'))
    assert n == _original_params(*cfg) == exact
    # the sizes in millions were SoT-Small's with the original BN-free dense layers, the others as counted with
    # timm 1.x's DenseBlock defaults, which add 36 BatchNorms (6,432 parameters) the checkpoints do not have
    bn_params = 0 if name == 'vit_sot_small' else 6_432
    assert round((n + bn_params) / 1e6, 2) == published


@pytest.mark.parametrize('size,dim,heads', [('tiny', 192, 3), ('small', 384, 6), ('base', 768, 12)])
def test_deit_gcp_sizes(size, dim, heads):
    deit = _n_params(timm.create_model(f'deit_{size}_patch16_224', device='meta'))
    isqrt = _n_params(timm.create_model(f'deit_{size}_patch16_224_isqrt', device='meta'))
    # DeiT + 1x1 reduction to 128 (conv + BN) + visual_fc on the 8256-d triangle (DeiT's head is cls_fc)
    assert isqrt == deit + dim * 128 + 2 * 128 + 8256 * 1000 + 1000
    dropcov = _n_params(timm.create_model(f'deit_{size}_patch16_224_dropcov', device='meta'))
    gcp_heads, r = {'tiny': (6, 14), 'small': (6, 24), 'base': (12, 24)}[size]
    assert dropcov == deit + dim * 2 * gcp_heads * r + gcp_heads * r * r * 1000 + 1000


# --- the original SoT / DropCov-ViT forward and checkpoints ----------------------------------------------

def _ref_original_forward(sd, x, num_heads, gcp_heads, r, chunks, svpn_norm):
    """The original SoT / DropCov-ViT eval forward, written with functional ops on an original-layout state dict."""
    p = 'visual_tokens.tokens.'
    x = F.max_pool2d(F.conv2d(x, sd[p + 'stem.0.weight'], sd[p + 'stem.0.bias'], padding=1), 3, 2, 1)
    for stage in range(3):
        feats = [x]
        for i in range(1, 7):
            pre = f'{p}stage.{2 * stage}.denselayer{i}.'
            y = F.conv2d(torch.cat(feats, 1).relu(), sd[pre + 'conv1.weight']).relu()
            feats.append(F.conv2d(y, sd[pre + 'conv2.weight'], padding=1))
        x = torch.cat(feats, 1)
        pre = f'{p}stage.{2 * stage + 1}.'
        x = F.batch_norm(x, sd[pre + 'norm.running_mean'], sd[pre + 'norm.running_var'],
                         sd[pre + 'norm.weight'], sd[pre + 'norm.bias'], eps=1e-5)
        x = F.avg_pool2d(F.conv2d(x, sd[pre + 'conv.weight']), 2)
    x = F.conv2d(x, sd[p + 'transition.weight'], sd[p + 'transition.bias']).flatten(2).transpose(1, 2)
    b, n, c = x.shape
    x = torch.cat([sd['cls_token'].expand(b, -1, -1), x], 1) + _ref_sinusoid(n + 1, c)
    depth = len({k.split('.')[1] for k in sd if k.startswith('blocks.')})

    def ln(t, pre):
        return F.layer_norm(t, (c,), sd[pre + '.weight'], sd[pre + '.bias'], eps=1e-5)

    for i in range(depth):
        pre = f'blocks.{i}.'
        qkv = (ln(x, pre + 'norm1') @ sd[pre + 'attn.qkv.weight'].T).reshape(b, n + 1, 3, num_heads, c // num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // num_heads) ** -0.5).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n + 1, c)
        x = x + F.linear(out, sd[pre + 'attn.proj.weight'], sd[pre + 'attn.proj.bias'])
        h = F.gelu(F.linear(ln(x, pre + 'norm2'), sd[pre + 'mlp.fc1.weight'], sd[pre + 'mlp.fc1.bias']))
        x = x + F.linear(h, sd[pre + 'mlp.fc2.weight'], sd[pre + 'mlp.fc2.bias'])
    x = ln(x, 'norm')
    cls, vis = x[:, 0], x[:, 1:]
    qk = (vis @ sd['classifier.representation.wr.weight'].T).reshape(b, n, chunks, gcp_heads, r).permute(2, 0, 3, 1, 4)
    s = _ref_cross_cov(qk[0].reshape(b * gcp_heads, n, r), qk[1].reshape(b * gcp_heads, n, r))
    if svpn_norm:
        s = _ref_svpn(s, sd['classifier.representation.norm.weight'])
    return (F.linear(s.reshape(b, -1), sd['classifier.visual_fc.weight'], sd['classifier.visual_fc.bias'])
            + F.linear(cls, sd['classifier.cls_fc.weight'], sd['classifier.cls_fc.bias']))


@pytest.mark.parametrize('name,num_heads,gcp_heads,r,chunks,svpn_norm', [
    ('vit_dropcov_small', 6, 6, 24, 3, False),
    ('vit_sot_tiny', 4, 6, 14, 2, True),
])
def test_original_checkpoint_loads_ema_and_matches_original_forward(name, num_heads, gcp_heads, r, chunks, svpn_norm):
    source = randomize(timm.create_model(name, depth=2, num_classes=10), 'all')
    ema = vit_original(source.state_dict())
    assert ema['classifier.representation.wr.weight'].shape == (chunks * gcp_heads * r, source.embed_dim)
    assert ema['visual_tokens.tokens.stage.0.denselayer1.conv1.weight'].shape == (32, 64, 1, 1)
    assert ema['visual_tokens.tokens.stage.5.norm.running_mean'].shape == (224,)
    raw = {k: v + 0.1 if v.is_floating_point() else v for k, v in ema.items()}
    checkpoint = {'epoch': 309, 'arch': name, 'state_dict': raw, 'state_dict_ema': ema,
                  'args': Namespace(model_ema=True), 'metric': 82.4, 'version': 2}

    model = timm.create_model(name, depth=2, num_classes=10).eval()
    model.load_state_dict(checkpoint_filter_fn(checkpoint, model))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        expected = _ref_original_forward(ema, x, num_heads, gcp_heads, r, chunks, svpn_norm)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)

    # without EMA weights the training weights are used
    del checkpoint['state_dict_ema']
    model.load_state_dict(checkpoint_filter_fn(checkpoint, model))
    torch.testing.assert_close(model.head.cls_fc.bias, raw['classifier.cls_fc.bias'])


def test_sinusoid_table_matches_original():
    torch.testing.assert_close(sinusoid_pos_embed(197, 384), _ref_sinusoid(197, 384))
    model = timm.create_model('vit_sot_tiny', depth=1)
    torch.testing.assert_close(model.pos_embed, _ref_sinusoid(197, 240))
    model.init_weights()  # timm's init draws a learned embedding: the fixed table stays
    torch.testing.assert_close(model.pos_embed, _ref_sinusoid(197, 240))
    model.set_input_size(img_size=(160, 192))
    assert model.pos_embed.shape == (1, 1 + 10 * 12, 240) and 'pos_embed' not in dict(model.named_parameters())
    torch.testing.assert_close(model.pos_embed, _ref_sinusoid(121, 240))
    assert model(torch.randn(1, 3, 160, 192)).shape == (1, 1000)


def test_release_cfgs():
    """The authors' DropCov-ViT tags are the default tags; timm lists them as pretrained once they are uploaded."""
    for name in ('vit_dropcov_small', 'vit_dropcov_t2t_14'):
        release = RELEASES[f'{name}.dc_in1k']
        assert timm.list_pretrained(name + '*') == ([release.name] if release.published else [])
        cfg = timm.create_model(name, pretrained=False, device='meta').pretrained_cfg
        assert cfg['tag'] == 'dc_in1k' and cfg.get('hf_hub_id') == (release.hub_id if release.published else None)
        assert cfg['num_classes'] == 1000 and cfg['pool_size'] == (14, 14)
        assert cfg['first_conv'] == 'patch_embed.stem.0' and cfg['classifier'] == ('head.cls_fc', 'head.visual_fc')
        assert cfg['crop_pct'] == 0.875 and cfg['paper_ids'] and cfg['origin_url'] and cfg['license']
    assert not timm.list_pretrained('deit_*_isqrt*') and not timm.list_pretrained('vit_sot*')


# --- timm's DeiT weights in the backbone -----------------------------------------------------------------

@pytest.mark.parametrize('name', ['deit_small_patch16_224_isqrt', 'deit_small_patch16_224_dropcov'])
def test_deit_weights_load_into_backbone(tmp_path, name):
    deit = randomize(timm.create_model('deit_small_patch16_224', depth=2), 'all')
    path = tmp_path / 'deit.pth'
    torch.save(deit.state_dict(), path)
    x = torch.randn(1, 3, 224, 224)
    for num_classes in (1000, 10):
        model = timm.create_model(name, depth=2, pretrained=True, num_classes=num_classes,
                                  pretrained_cfg_overlay=dict(file=str(path))).eval()
        with torch.no_grad():
            torch.testing.assert_close(torch.cat(model.forward_features(x), 1), deit.forward_features(x))
            assert model(x).shape == (1, num_classes)
        assert model.head.visual_fc.weight.shape[0] == num_classes
        assert not torch.equal(model.head.cls_fc.weight[:10], deit.head.weight[:10])  # the head is new


def test_checkpoint_of_another_gcp_head_is_refused():
    """The filter names every tensor that does not fit, as every family's (checkpoints/fit.py)."""
    small = timm.create_model('deit_small_patch16_224_dropcov', depth=1)
    isqrt = timm.create_model('deit_small_patch16_224_isqrt', depth=1)
    with pytest.raises(ValueError, match=r'does not fit GCPVisionTransformer\n'
                                         r'missing: head\.representation\.reduce\.conv\.weight(.|\n)*'
                                         r'unexpected: head\.representation\.wr\.weight'):
        checkpoint_filter_fn(small.state_dict(), isqrt)
    deeper = timm.create_model('deit_small_patch16_224_isqrt', depth=2).state_dict()
    deeper['blocks.0.attn.qkv.weight'] = deeper['blocks.0.attn.qkv.weight'][:-1]
    with pytest.raises(ValueError, match=r'mis-shaped: blocks\.0\.attn\.qkv\.weight: checkpoint \(1151, 384\) vs '
                                         r'model \(1152, 384\)(.|\n)*unexpected: blocks\.1\.norm1\.weight'):
        checkpoint_filter_fn(deeper, isqrt)


# --- the timm model API ------------------------------------------------------------------------------------

def test_registered_names():
    assert VIT_MODELS == sorted([
        'deit_tiny_patch16_224_isqrt', 'deit_small_patch16_224_isqrt', 'deit_base_patch16_224_isqrt',
        'deit_tiny_patch16_224_dropcov', 'deit_small_patch16_224_dropcov', 'deit_base_patch16_224_dropcov',
        'vit_sot_tiny', 'vit_sot_small', 'vit_sot_base', 'vit_dropcov_small', 'vit_dropcov_t2t_14',
    ])


@pytest.mark.parametrize('name', ['deit_tiny_patch16_224_isqrt', 'deit_tiny_patch16_224_dropcov', 'vit_sot_tiny'])
def test_model_api(name):
    model = timm.create_model(name, depth=2).eval()
    assert isinstance(model, GCPVisionTransformer) and isinstance(model, timm.models.VisionTransformer)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        prefix, patches = model.forward_features(x)
        assert prefix.shape == (2, 1, model.embed_dim) and patches.shape == (2, 196, model.embed_dim)
        pre = model.forward_head([prefix, patches], pre_logits=True)
        assert pre.shape == (2, model.head_hidden_size) == (2, model.num_features)
        torch.testing.assert_close(pre[:, :model.embed_dim], prefix[:, 0])
        logits = model(x)
        model.set_grad_checkpointing(True)
        torch.testing.assert_close(model(x), logits)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pre)
        model.reset_classifier(0, '')
        torch.testing.assert_close(model(x), torch.cat([prefix, patches], 1))
        model.reset_classifier(3)  # a classifier on unpooled tokens brings the pooling back
        assert model.global_pool == 'gcp' and model(x).shape == (2, 3)
        model.reset_classifier(3, 'gcp')
        assert model(x).shape == (2, 3)
    with pytest.raises(ValueError, match='needs num_classes=0'):
        model.reset_classifier(3, '')

    final, taps = model.forward_intermediates(x, indices=2)
    torch.testing.assert_close(final[1], patches)
    assert [t.shape for t in taps] == [(2, model.embed_dim, 14, 14)] * 2
    features = timm.create_model(name, depth=2, features_only=True, out_indices=(0, 1))
    assert [f.shape for f in features(x)] == [(2, model.embed_dim, 14, 14)] * 2

    model.prune_intermediate_layers([0])
    # the whole head goes: no pooling, no classifiers, no parameters
    assert model.head.pool_type == '' and not list(model.head.parameters())
    assert model.head_hidden_size == model.num_features == model.embed_dim
    model.reset_classifier(4, 'gcp')
    assert model(x).shape == (2, 4)


def test_model_scripted_matches_eager():
    model = timm.create_model('vit_sot_tiny', depth=1).eval()
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_layer_decay_groups_and_frozen_reset():
    model = timm.create_model('deit_tiny_patch16_224_dropcov', depth=3)
    groups = create_optimizer_v2(model, 'adamw', lr=1e-3, layer_decay=0.7).param_groups
    scales = sorted({round(g['lr_scale'], 6) for g in groups})
    assert len(scales) == 5 and scales[-1] == 1.0  # stem, 3 blocks, head
    head_group = [g for g in groups if any(p is model.head.visual_fc.weight for p in g['params'])]
    assert head_group[0]['lr_scale'] == 1.0
    model.requires_grad_(False)
    model.reset_classifier(0)
    model.set_input_size(img_size=(448, 448))
    assert not [n for n, p in model.named_parameters() if p.requires_grad]


def test_model_bf16_autocast_finite_and_close():
    torch.manual_seed(0)
    model = timm.create_model('deit_tiny_patch16_224_isqrt', depth=1).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_model_bad_settings_and_tokens():
    with pytest.raises(TypeError):
        timm.create_model('deit_tiny_patch16_224_isqrt', not_a_model_arg=1)
    with pytest.raises(ValueError, match="unknown norm 'svpn' for pool='cov'"):
        timm.create_model('deit_tiny_patch16_224_isqrt', gcp_norm='svpn')
    with pytest.raises(ValueError, match="heads only apply to pool='crosscov'"):
        timm.create_model('deit_tiny_patch16_224_isqrt', gcp_heads=4)
    with pytest.raises(ValueError, match="unknown GCP global_pool 'avg'"):
        timm.create_model('deit_tiny_patch16_224_dropcov', global_pool='avg')
    with pytest.raises(ValueError, match='class_token=False'):
        timm.create_model('deit_tiny_patch16_224_dropcov', class_token=False, depth=1)
    with pytest.raises(ValueError, match='fc_norm'):
        timm.create_model('deit_tiny_patch16_224_dropcov', fc_norm=True, depth=1)
    with pytest.raises(ValueError, match='dynamic_img_size'):
        timm.create_model('vit_sot_tiny', dynamic_img_size=True, depth=1)
    with pytest.raises(ValueError, match='fixed stride of 16'):
        timm.create_model('vit_sot_tiny', patch_size=8, depth=1)
    model = timm.create_model('deit_tiny_patch16_224_dropcov', depth=1).eval()
    with pytest.raises(ValueError, match='at least 2 patch tokens, got 0'):
        model.forward_head([torch.randn(2, 1, 192), torch.randn(2, 0, 192)])
    with pytest.raises(ValueError, match='tokens of width 192, got 96'):
        model.forward_head([torch.randn(2, 1, 96), torch.randn(2, 196, 96)])


@pytest.mark.parametrize('name', ['deit_tiny_patch16_224_isqrt', 'deit_tiny_patch16_224_dropcov'])
def test_an_image_of_one_patch_is_refused(name):
    # one patch token: a covariance over it would give every image the same pooled vector
    model = timm.create_model(name, img_size=16, depth=1).eval()
    with pytest.raises(ValueError, match=r'at least 2 patch tokens, got 1 .*img_size=32 at patch size 16'):
        model(torch.randn(2, 3, 16, 16))
    model = timm.create_model(name, img_size=(16, 32), depth=1).eval()
    assert model(torch.randn(2, 3, 16, 32)).shape == (2, 1000)


def test_iters_without_newton_schulz_is_refused():
    with pytest.raises(ValueError, match=r"iters=3 is the Newton-Schulz iteration count .* pool='crosscov'"):
        timm.create_model('deit_tiny_patch16_224_dropcov', gcp_iters=3, depth=1)
    with pytest.raises(ValueError, match=r"iters=3 .* means nothing for norm='mpn'"):
        timm.create_model('deit_tiny_patch16_224_isqrt', gcp_norm='mpn', gcp_iters=3, depth=1)
    # not given: the defaults of every norm build
    assert timm.create_model('deit_tiny_patch16_224_isqrt', gcp_norm='mpn', depth=1, device='meta')
    assert timm.create_model('deit_tiny_patch16_224_isqrt', gcp_iters=3, depth=1).head.representation.norm.iters == 3


# --- head widths and pretrained (docs/architectures.md, "Head arguments") --------------------------------

def test_gcp_dim_0_pools_the_tokens_unreduced_and_wider_dims_need_gcp_expand():
    model = timm.create_model('deit_tiny_patch16_224_isqrt', gcp_dim=0, depth=1, device='meta')
    assert model.head.representation.dim == 192 and isinstance(model.head.representation.reduce, torch.nn.Identity)
    assert model.num_features == 192 + 192 * 193 // 2
    with pytest.raises(ValueError, match=r"dim=512 \(a model's gcp_dim\) is wider than the 192 input channels"):
        timm.create_model('deit_tiny_patch16_224_isqrt', gcp_dim=512, depth=1, device='meta')
    with pytest.raises(ValueError, match=r'dim=200 .* wider than the 192 input channels: .* in the projection'):
        timm.create_model('deit_tiny_patch16_224_dropcov', gcp_dim=200, depth=1, device='meta')
    with pytest.raises(ValueError, match=r"dim=0 \(no reduction\) is a setting of pool='cov'"):
        timm.create_model('vit_dropcov_small', gcp_dim=0, depth=1, device='meta')
    wide = timm.create_model('deit_tiny_patch16_224_isqrt', gcp_dim=256, gcp_expand=True, depth=1, device='meta')
    assert wide.head.representation.dim == 256


@pytest.mark.parametrize('name', timm.list_models(module='gcp_vit'))
def test_registered_head_widths_fit_the_tokens(name):
    model = timm.create_model(name, depth=1, device='meta')
    assert model.head.representation.dim <= model.embed_dim


@pytest.mark.parametrize('name', ['deit_small_patch16_224_isqrt', 'vit_dropcov_small.dc_in1k'])
def test_a_string_pretrained_is_named(name):
    arch = name.split('.')[0]
    with pytest.raises(TypeError, match=rf"{arch}: pretrained must be True or False, got 'vit_small_patch16_224'; "
                                        r"timm.create_model's second positional argument is pretrained"):
        timm.create_model(name, 'vit_small_patch16_224')
