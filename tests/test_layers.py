"""The GCP layers against independent float64 references, their gradients, and their errors."""
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.autograd import gradcheck

from timm_gcp.bench.reference import dense_centring_covariance
from timm_gcp.layers import (
    EIGENBASIS_CROSSOVER, AdaptiveChannelDrop, CovPool, GCP_POOL_TYPES, GCPHead, GCPPool, ISqrt, MatrixPower, TriuVec,
    check_pool_input, covariance, covariance_tokens, drop_channels, dropcov_rate, isqrt, make_fc, mpn, triu_vec,
    TokenGCPHead,
)

from tests.helpers.weights import randomize


def _features(b=2, c=6, h=3, w=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g, dtype=dtype).relu()


def _spd(b=3, c=5, n=20, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, n, generator=g, dtype=dtype)
    return x @ x.transpose(1, 2) / n


def _ns_reference(cov, iters):
    """Plain loop of full coupled Newton-Schulz steps (Y0 = A, Z0 = I), iSQRT-COV's pre/post scaling."""
    c = cov.shape[-1]
    eye = torch.eye(c, dtype=cov.dtype)
    out = []
    for m in cov:
        tr = torch.trace(m)
        y, z = m / tr, eye.clone()
        for _ in range(iters):
            t = 0.5 * (3 * eye - z @ y)
            y, z = y @ t, t @ z
        out.append(y * tr.sqrt())
    return torch.stack(out)


def _eigh_power(cov, p):
    evals, evecs = torch.linalg.eigh(cov)
    return evecs @ torch.diag_embed(evals.clamp_min(0) ** p) @ evecs.transpose(1, 2)


# --- covariance -----------------------------------------------------------------------------------

def test_covariance_matches_dense_centring_matrix():
    x = _features(3, 7, 4, 5)
    torch.testing.assert_close(covariance(x), dense_centring_covariance(x.double()), rtol=1e-12, atol=1e-12)


def test_covariance_float32_equals_float64_reference():
    x = _features(2, 16, 7, 7, dtype=torch.float32)
    out = covariance(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), dense_centring_covariance(x.double()), rtol=1e-5, atol=1e-6)


def test_covariance_tokens_is_covariance_over_tokens():
    x = _features(2, 6, 4, 4)
    tokens = x.flatten(2).transpose(1, 2)
    torch.testing.assert_close(covariance_tokens(tokens), covariance(x))


def test_covariance_stays_float32_under_autocast():
    x = _features(2, 16, 5, 5, dtype=torch.float32)
    ref = covariance(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = covariance(x)
        half_in = covariance(x.bfloat16())
    assert out.dtype == torch.float32 and half_in.dtype == torch.float32
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(half_in, covariance(x.bfloat16().float()))


def test_covpool_module_equals_function():
    x = _features()
    torch.testing.assert_close(CovPool()(x), covariance(x))


# --- triangle ------------------------------------------------------------------------------------

def test_triu_vec_row_major_order():
    c = 5
    m = torch.arange(2 * c * c, dtype=torch.float32).reshape(2, c, c)
    expected = torch.stack([torch.stack([m[b, i, j] for i in range(c) for j in range(i, c)]) for b in range(2)])
    assert triu_vec(m).shape == (2, c * (c + 1) // 2)
    torch.testing.assert_close(triu_vec(m), expected)
    torch.testing.assert_close(TriuVec(c)(m), expected)


def test_triu_vec_output_sizes():
    for c, k in ((64, 2080), (128, 8256), (256, 32896)):
        assert triu_vec(torch.zeros(1, c, c)).shape == (1, k)


# --- iSQRT ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('iters', [1, 2, 3, 5, 7])
def test_isqrt_equals_reference_iteration(iters):
    cov = covariance(_features(3, 8, 5, 5))
    torch.testing.assert_close(isqrt(cov, iters), _ns_reference(cov, iters), rtol=1e-10, atol=1e-12)


def test_isqrt_converges_to_exact_square_root():
    cov = _spd(c=6, n=40)
    exact = _eigh_power(cov, 0.5)
    torch.testing.assert_close(isqrt(cov, iters=20), exact, rtol=1e-8, atol=1e-8)
    assert torch.allclose(isqrt(cov, 20) @ isqrt(cov, 20), cov, atol=1e-8)


def test_isqrt_five_iterations_is_approximate():
    cov = covariance(_features(2, 16, 7, 7))
    exact = _eigh_power(cov, 0.5)
    err5 = (isqrt(cov, 5) - exact).norm() / exact.norm()
    err3 = (isqrt(cov, 3) - exact).norm() / exact.norm()
    assert err5 < err3 < 1.0
    assert err5 > 1e-3


def _rotated(evals, seed=0):
    """Q diag(evals) Q^T with a random orthogonal Q: symmetric input with the given (repeated) eigenvalues."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(evals.shape[0], evals.shape[1], evals.shape[1], generator=g, dtype=evals.dtype))
    return (q * evals.unsqueeze(-2)) @ q.transpose(1, 2)


ISQRT_INPUTS = {
    'rank-deficient': lambda: covariance(_features(2, 32, 3, 3)),  # N = 9 < C = 32
    'repeated': lambda: _rotated(torch.tensor([[1.0] * 4 + [3.0] * 4, [0.0] * 5 + [2.0] * 3], dtype=torch.float64)),
    'zero': lambda: torch.zeros(2, 8, 8, dtype=torch.float64),
}


@pytest.mark.parametrize('iters', [1, 3, 5, 7])
@pytest.mark.parametrize('kind', list(ISQRT_INPUTS))
def test_isqrt_eigenbasis_equals_products(kind, iters):
    """The map applied to the eigenvalues is the product form: to 1e-12 in float64, and in float32 within the
    rounding of a float32 eigh (its reconstruction of A alone is off by about 1e-6 at C = 256)."""
    cov = ISQRT_INPUTS[kind]()
    products = isqrt(cov, iters, eigenbasis=False)
    scale = products.norm().clamp_min(1e-300)
    assert (isqrt(cov, iters, eigenbasis=True) - products).norm() / scale <= 1e-12
    eig32 = isqrt(cov.float(), iters, eigenbasis=True)
    assert eig32.dtype == torch.float32
    assert (eig32.double() - products).norm() / scale <= 3e-6


FIXTURES = Path(__file__).parent / 'fixtures'


def test_a_float32_eigh_that_fails_is_done_again_in_float64():
    """A 256 x 256 float32 covariance (a reduced ShuffleNetV2 map of 4 x 4 positions) on which LAPACK's float32
    eigh returns NaN without an error: the eigenbasis isqrt and MPN-COV still give the float64 results."""
    cov = load_file(FIXTURES / 'eigh_nonfinite_cov.safetensors')['cov']
    assert cov.dtype == torch.float32 and torch.isfinite(cov).all()
    products = isqrt(cov.double(), 5, eigenbasis=False)
    eigenbasis = isqrt(cov, 5, eigenbasis=True)
    assert torch.isfinite(eigenbasis).all()
    assert (eigenbasis.double() - products).norm() / products.norm() <= 3e-6
    exact = mpn(cov.double(), 0.5)
    assert ((mpn(cov, 0.5).double() - exact).norm() / exact.norm()) <= 1e-5


def test_a_non_finite_eigh_is_retried_in_float64(monkeypatch):
    """However eigh fails in float32, the retry is in float64 and the result keeps the input's dtype."""
    real = torch.linalg.eigh
    calls = []

    def failing(a, *args, **kwargs):
        calls.append(a.dtype)
        evals, evecs = real(a, *args, **kwargs)
        return (evals * float('nan'), evecs) if a.dtype == torch.float32 else (evals, evecs)

    monkeypatch.setattr(torch.linalg, 'eigh', failing)
    cov = ISQRT_INPUTS['rank-deficient']()
    for out in (isqrt(cov.float(), 5, eigenbasis=True), mpn(cov.float(), 0.5)):
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert calls == [torch.float32, torch.float64] * 2
    torch.testing.assert_close(isqrt(cov.float(), 5, eigenbasis=True).double(), isqrt(cov, 5, eigenbasis=False),
                               rtol=0, atol=1e-5)


def test_isqrt_default_path():
    """Eager CPU code above the crossover takes the eigenbasis; jit tracing and torch.export get the products."""
    dim, iters = EIGENBASIS_CROSSOVER['eval'][0]
    assert not any(dim >= d and iters - 1 >= k for d, k in EIGENBASIS_CROSSOVER['eval'])
    assert any(dim >= d and iters - 1 >= k for d, k in EIGENBASIS_CROSSOVER['train'])
    cov = covariance(torch.randn(1, dim, 4, 4, generator=torch.Generator().manual_seed(0)).relu())
    eig, products = isqrt(cov, iters, eigenbasis=True), isqrt(cov, iters, eigenbasis=False)
    assert not torch.equal(eig, products)  # float32 rounding tells the two apart
    assert torch.equal(isqrt(cov, iters), eig)  # on the inference crossover, no gradient
    assert torch.equal(isqrt(cov, iters - 1), isqrt(cov, iters - 1, eigenbasis=False))  # below it
    # with a gradient the crossover is lower: one iteration fewer is above it
    assert torch.equal(isqrt(cov.requires_grad_(), iters - 1), isqrt(cov, iters - 1, eigenbasis=True))
    traced = torch.jit.trace(ISqrt(iters), cov.detach())
    exported = torch.export.export(ISqrt(iters), (cov.detach(),))
    for graph in (traced.graph, exported.graph):
        assert 'eigh' not in str(graph)
    torch.testing.assert_close(exported.module()(cov.detach()), products, rtol=0, atol=0)


def test_isqrt_module_equals_function():
    cov = _spd()
    torch.testing.assert_close(ISqrt(3)(cov), isqrt(cov, 3))


def test_isqrt_saved_tensors_budget():
    """Memory for backward: at most 16 B x C x C tensors for cov + isqrt5 + triu (issue target)."""
    b, c = 4, 16
    x = torch.randn(b, c, 7, 7, requires_grad=True)
    matrices = set()

    def pack(t):
        if t.numel() == b * c * c:
            matrices.add(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        triu_vec(isqrt(covariance(x), 5))
    assert len(matrices) <= 16, len(matrices)


# --- MPN (eigen power) -----------------------------------------------------------------------------

@pytest.mark.parametrize('power', [0.5, 0.25, 1.0])
def test_mpn_matches_eigh_power(power):
    cov = _spd(c=6, n=30)
    torch.testing.assert_close(mpn(cov, power), _eigh_power(cov, power), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(MatrixPower(power)(cov), mpn(cov, power))


def test_mpn_square_root_squares_back():
    cov = _spd(c=6, n=30)
    root = mpn(cov)
    torch.testing.assert_close(root @ root, cov, rtol=1e-9, atol=1e-9)


def test_mpn_gradient_bounded_on_rank_deficient():
    """N < C: autograd's eigh gradient blows up on the repeated zero eigenvalues; ours stays bounded."""
    x = _features(2, 32, 3, 3, dtype=torch.float32, seed=1)  # N = 9 < C = 32
    cov = covariance(x).requires_grad_(True)
    g = torch.randn(cov.shape, generator=torch.Generator().manual_seed(0))
    (mpn(cov) * g).sum().backward()
    assert torch.isfinite(cov.grad).all()
    assert cov.grad.abs().max() < 1e4

    naive = covariance(x).requires_grad_(True)
    evals, evecs = torch.linalg.eigh(naive)
    ((evecs @ torch.diag_embed(evals.clamp_min(0).sqrt()) @ evecs.transpose(1, 2)) * g).sum().backward()
    assert not torch.isfinite(naive.grad).all() or naive.grad.abs().max() > 10 * cov.grad.abs().max()


def test_mpn_gradient_finite_for_repeated_eigenvalues():
    cov = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1).requires_grad_(True)
    mpn(cov).diagonal(dim1=1, dim2=2).sum().backward()
    # d tr(Sigma^1/2) / d Sigma = Sigma^-1/2 / 2 = I / 2 at the identity
    torch.testing.assert_close(cov.grad, 0.5 * torch.eye(4, dtype=torch.float64).repeat(2, 1, 1))


# --- gradients -------------------------------------------------------------------------------------

def test_gradcheck_covariance():
    assert gradcheck(covariance, (_features(2, 4, 3, 3).requires_grad_(),))
    assert gradcheck(covariance_tokens, (_features(2, 4, 3, 3).flatten(2).transpose(1, 2).requires_grad_(),))


@pytest.mark.parametrize('iters', [1, 3, 5])
def test_gradcheck_isqrt(iters):
    for eigenbasis in (False, True):
        assert gradcheck(lambda m: isqrt(m, iters, eigenbasis=eigenbasis), (_spd(2, 4, 10).requires_grad_(),))


@pytest.mark.parametrize('iters', [1, 2, 3, 5])
@pytest.mark.parametrize('shape', [(3, 8, 5, 4), (2, 16, 2, 3), (2, 6, 1, 1)])
def test_isqrt_eigenbasis_gradient_equals_autograd(iters, shape):
    """End to end through the covariance, both gradients agree (full rank, N < C, and a 1x1 map)."""
    x = _features(*shape, seed=iters).requires_grad_(True)
    g = torch.randn(shape[0], shape[1] * (shape[1] + 1) // 2, dtype=torch.float64)
    grads = []
    for eigenbasis in (False, True):
        (triu_vec(isqrt(covariance(x), iters, eigenbasis=eigenbasis)) * g).sum().backward()
        grads.append(x.grad.clone())
        x.grad = None
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-9, atol=1e-11)
    assert torch.isfinite(grads[1]).all()


def test_gradcheck_mpn():
    for power in (0.5, 0.3):
        assert gradcheck(lambda m: mpn(0.5 * (m + m.transpose(1, 2)), power), (_spd(2, 4, 10).requires_grad_(),))


def test_gradcheck_triu_vec():
    assert gradcheck(triu_vec, (torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize('norm', ['isqrt', 'mpn', 'none'])
def test_gradcheck_head(norm):
    torch.manual_seed(0)  # a full-rank covariance: the eigen power is smooth only above its floor
    head = GCPHead(6, num_classes=3, dim=4, norm=norm).double().eval()
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64)  # not ReLU'd: zero inputs would sit on the head's ReLU kink
    assert gradcheck(head, (x.requires_grad_(),))


def test_gradcheck_dropcov_training():
    drop = AdaptiveChannelDrop(8).double().train()

    def fixed_mask(x):
        torch.manual_seed(0)
        return drop(x)

    assert gradcheck(fixed_mask, (_features(2, 8, 3, 3).requires_grad_(),))


# --- DropCov -----------------------------------------------------------------------------------------

def test_dropcov_rate_formula():
    g = torch.Generator().manual_seed(3)
    attn = torch.rand(4, 16, generator=g, dtype=torch.float64).softmax(-1)
    cov = _spd(4, 16, 50, seed=3) - 0.02
    expected_rho = []
    for b in range(4):
        y, r = attn[b].tolist(), cov[b].sum(-1).tolist()
        dot = sum(a * c for a, c in zip(y, r))
        expected_rho.append(dot / math.sqrt(sum(a * a for a in y)) / math.sqrt(sum(c * c for c in r)))
    for scale in (10.0, 2.0, 0.5):
        expected = min(max(1 - scale / math.log2(16) * sum(expected_rho) / 4, 0.0), 1.0)
        assert dropcov_rate(attn, cov, scale).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_dropcov_rate_clipped():
    attn = torch.full((2, 8), 1 / 8, dtype=torch.float64)
    aligned = torch.eye(8, dtype=torch.float64).repeat(2, 1, 1)
    assert dropcov_rate(attn, aligned).item() == 0.0
    assert dropcov_rate(attn, -aligned).item() == 1.0


def test_drop_channels_statistics():
    torch.manual_seed(0)
    x = torch.ones(64, 256, 2, 2)
    out = drop_channels(x, torch.tensor(0.3))
    per_channel = out[:, :, 0, 0]
    dropped = (per_channel == 0).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.02)
    # whole channels: every position of a channel shares the mask; survivors are scaled by 1 / (1 - p)
    assert torch.equal(out.amin((2, 3)), out.amax((2, 3)))
    torch.testing.assert_close(per_channel[per_channel != 0], torch.full_like(per_channel[per_channel != 0], 1 / 0.7))
    assert out.mean().item() == pytest.approx(1.0, abs=0.03)
    assert torch.equal(drop_channels(x, torch.tensor(0.0)), x)
    assert not drop_channels(x, torch.tensor(1.0)).any()


def test_dropcov_eval_is_identity_and_train_perturbs():
    drop = AdaptiveChannelDrop(16)
    x = _features(4, 16, 5, 5, dtype=torch.float32)
    assert drop.eval()(x) is x
    out = drop.train()(x)
    assert out.shape == x.shape and not torch.equal(out, x)


def test_dropcov_head_eval_is_plain_covariance_pooling():
    head = GCPHead(12, num_classes=0, dim=0, norm='none', dropcov=True).eval()
    x = _features(2, 12, 4, 4, dtype=torch.float32)
    torch.testing.assert_close(head(x), triu_vec(covariance(x)))


def test_dropcov_training_rate_without_host_sync():
    """The training forward compiles without graph breaks: the rate never leaves the device."""
    drop = AdaptiveChannelDrop(16).train()
    explanation = torch._dynamo.explain(drop)(_features(2, 16, 4, 4, dtype=torch.float32))
    assert explanation.graph_break_count == 0, explanation.break_reasons


# --- degenerate input -----------------------------------------------------------------------------

@pytest.mark.parametrize('norm,dropcov', [('isqrt', False), ('mpn', False), ('none', True)])
@pytest.mark.parametrize('shape', [(2, 8, 1, 2), (2, 8, 2, 2), (2, 8, 5, 5)])  # 1x1 is refused (test below)
@pytest.mark.parametrize('scale', [0.0, 1e-20, 1.0])
def test_degenerate_inputs_finite(norm, dropcov, shape, scale):
    head = GCPHead(8, num_classes=3, dim=0, norm=norm, dropcov=dropcov).train()
    x = (_features(*shape, dtype=torch.float32) * scale).requires_grad_(True)
    out = head(x)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


# --- pooling ---------------------------------------------------------------------------------------

def _pool_pair(input_fmt, in_features=12, dim=6, norm='isqrt'):
    """A float64 GCPPool with random BN statistics and a second one, for `input_fmt`, with the same weights."""
    torch.manual_seed(0)
    reference = randomize(GCPPool(in_features, dim=dim, norm=norm)).double()
    other = GCPPool(in_features, dim=dim, norm=norm, input_fmt=input_fmt).double().eval()
    other.load_state_dict(reference.state_dict())
    return reference, other


@pytest.mark.parametrize('norm', ['isqrt', 'mpn', 'none'])
def test_pool_input_formats_give_the_same_vector(norm):
    """NCHW features, the same features NHWC, and as tokens B x N x C (flatten(2).transpose) pool alike."""
    x = _features(2, 12, 4, 5)
    nchw, nhwc = _pool_pair('NHWC', norm=norm)
    _, nlc = _pool_pair('NLC', norm=norm)
    expected = nchw(x)
    # independently composed: reduction, then the covariance of the reduced map, its normalization, the triangle
    matrix = covariance(nchw.reduce(x))
    matrix = {'isqrt': lambda m: isqrt(m, 5), 'mpn': mpn, 'none': lambda m: m}[norm](matrix)
    torch.testing.assert_close(expected, triu_vec(matrix), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(nhwc(x.permute(0, 2, 3, 1)), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(nlc(x.flatten(2).transpose(1, 2)), expected, rtol=1e-12, atol=1e-12)
    assert (nchw.input_fmt, nhwc.input_fmt, nlc.input_fmt) == ('NCHW', 'NHWC', 'NLC')


@pytest.mark.parametrize('in_features,dim,out_features', [(12, 2, 3), (12, 7, 28), (512, 128, 8256),
                                                           (512, 256, 32896), (10, 0, 55)])
def test_pool_out_features_is_the_triangle(in_features, dim, out_features):
    pool = GCPPool(in_features, dim=dim)
    assert pool.out_features == out_features == pool.dim * (pool.dim + 1) // 2
    assert pool.in_features == in_features and pool.dim == (dim or in_features)
    assert isinstance(pool.reduce, torch.nn.Identity) == (dim == 0)
    x = torch.randn(2, in_features, 3, 3)
    assert pool.eval()(x).shape == (2, out_features)


def test_pool_submodules_and_reduction_init():
    pool = GCPPool(512, dim=128, dropcov=True, dropcov_scale=4.0, bn_eps=1e-4)
    assert [name for name, _ in pool.named_children()] == ['reduce', 'dropcov', 'cov', 'norm', 'triu']
    assert isinstance(pool.dropcov, AdaptiveChannelDrop) and pool.dropcov.scale == 4.0
    assert pool.reduce.bn.eps == 1e-4 and pool.reduce.conv.bias is None
    # Kaiming normal, fan-out, as the original heads: std sqrt(2 / 128), not PyTorch's default conv init
    assert pool.reduce.conv.weight.std().item() == pytest.approx(math.sqrt(2 / 128), rel=0.02)
    assert isinstance(GCPPool(16, dim=8).dropcov, torch.nn.Identity)


def test_pool_bad_input_format_and_width():
    with pytest.raises(ValueError, match=r"unknown input_fmt 'NWC', expected one of \('NCHW', 'NHWC', 'NLC'\)"):
        GCPPool(12, dim=4, input_fmt='NWC')
    with pytest.raises(ValueError, match=r'expects 12 input channels \(NCHW\), got 10 \(shape \(2, 10, 3, 3\)\)'):
        GCPPool(12, dim=4)(torch.randn(2, 10, 3, 3))
    with pytest.raises(ValueError, match=r'expects 12 input channels \(NHWC\), got 3'):
        GCPPool(12, dim=4, input_fmt='NHWC')(torch.randn(2, 12, 3, 3))  # an NCHW map given as NHWC
    with pytest.raises(ValueError, match=r'expects 12 input channels \(NLC\), got 10'):
        GCPPool(12, dim=4, input_fmt='NLC')(torch.randn(2, 9, 10))
    with pytest.raises(ValueError, match=r'GCP pooling input must be 3-D \(NLC\), got shape \(2, 12, 3, 3\)'):
        GCPPool(12, dim=4, input_fmt='NLC')(torch.randn(2, 12, 3, 3))
    with pytest.raises(ValueError, match=r'GCP pooling input must be 4-D \(NHWC\)'):
        check_pool_input(torch.randn(2, 9, 12), 12, 'NHWC')
    with pytest.raises(ValueError, match='in_features must be >= 2'):
        GCPPool(1)


# --- head ------------------------------------------------------------------------------------------

def test_head_shapes_and_reset():
    head = GCPHead(32, num_classes=10, dim=16).eval()
    x = torch.randn(3, 32, 7, 7)
    assert head(x).shape == (3, 10)
    assert head(x, pre_logits=True).shape == (3, 136)
    assert (head.in_features, head.num_features, head.global_pool.out_features) == (32, 136, 136)
    head.reset(0)
    assert head(x).shape == (3, 136)
    head.reset(5)
    assert head(x).shape == (3, 5)
    head.reset(0, '')
    assert head(x) is x
    assert head.num_features == 32 and isinstance(head.global_pool, torch.nn.Identity)


def test_head_unpooled_features_need_num_classes_0():
    """pool_type='' passes features through: a classifier on them is refused when built, and by reset()."""
    assert GCP_POOL_TYPES == ('gcp', '')
    with pytest.raises(ValueError, match="pool_type='' returns the unpooled features and needs num_classes=0"):
        GCPHead(16, num_classes=10, pool_type='')
    head = GCPHead(16, num_classes=0, pool_type='')
    x = torch.randn(2, 16, 3, 3)
    assert head(x) is x and head.num_features == 16 and isinstance(head.global_pool, torch.nn.Identity)
    pooled = GCPHead(16, num_classes=3, dim=4)
    with pytest.raises(ValueError, match="pool_type='' returns the unpooled features and needs num_classes=0"):
        pooled.reset(5, '')
    assert pooled.pool_type == 'gcp' and pooled.num_classes == 3  # the refused reset changed nothing


def test_head_reset_brings_the_pooling_back():
    """As timm's ClassifierHead: a removed pooling comes back with its settings, on request or under a classifier."""
    head = GCPHead(16, num_classes=0, pool_type='', dim=4, iters=3, drop_rate=0.5).eval()
    x = torch.randn(2, 16, 3, 3)
    head.reset(0, 'gcp')
    assert head.pool_type == 'gcp' and head(x).shape == (2, 10) and head.num_features == 10
    assert isinstance(head.global_pool, GCPPool) and head.global_pool.norm.iters == 3
    assert not head.global_pool.training  # the new pooling takes the head's mode
    head.reset(0, '')
    head.reset(5)  # a classifier on unpooled features brings the pooling back
    assert head.pool_type == 'gcp' and head(x).shape == (2, 5) and head.global_pool.dim == 4


def test_head_reset_in_features_rebuilds_the_pooling():
    """A new in_features (the trunk was pruned) builds a pooling for that width; the same width keeps it."""
    head = GCPHead(16, num_classes=3, dim=4, bn_eps=1e-3, min_input=9)
    pool = head.global_pool
    head.reset(7, in_features=16)
    assert head.global_pool is pool and head.fc.out_features == 7
    head.requires_grad_(False)
    head.reset(2, in_features=8)
    assert head.in_features == head.global_pool.in_features == 8 and head.global_pool is not pool
    assert head.global_pool.reduce.bn.eps == 1e-3 and head.global_pool.min_input == 9  # the same settings
    assert head(torch.randn(2, 8, 3, 3)).shape == (2, 2) and head.num_features == 10
    head.reset(0, '', in_features=6)
    x = torch.randn(2, 6, 3, 3)
    assert head(x) is x and head.num_features == 6


def test_make_fc():
    assert isinstance(make_fc(8, 0), torch.nn.Identity)
    fc = make_fc(8, 3, dtype=torch.float64)
    assert (fc.in_features, fc.out_features, fc.weight.dtype) == (8, 3, torch.float64)


def test_head_matches_composed_layers():
    head = GCPHead(32, num_classes=10, dim=16, iters=3).eval()
    x = torch.randn(3, 32, 7, 7)
    rep = triu_vec(isqrt(covariance(head.global_pool.reduce(x)), 3))
    torch.testing.assert_close(head(x), head.fc(rep))


@pytest.mark.parametrize('norm', ['isqrt', 'mpn', 'none'])
def test_head_under_bf16_autocast_matches_float32(norm):
    torch.manual_seed(0)
    head = GCPHead(16, num_classes=0, dim=0, norm=norm).eval()
    x = torch.randn(4, 16, 7, 7).relu()
    ref = head(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = head(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def test_head_bf16_model_outputs_bf16():
    head = GCPHead(16, num_classes=4, dim=8).eval()
    x = torch.randn(2, 16, 5, 5)
    ref = head(x)
    out = head.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.1, atol=0.1)


@pytest.mark.parametrize('norm,dropcov', [('isqrt', False), ('mpn', False), ('none', True)])
def test_head_torchscript(norm, dropcov):
    head = GCPHead(16, num_classes=4, dim=8, norm=norm, dropcov=dropcov).eval()
    x = torch.randn(2, 16, 5, 5)
    scripted = torch.jit.script(head)
    torch.testing.assert_close(scripted(x), head(x))


# --- bad input -----------------------------------------------------------------------------------

def test_bad_input_errors():
    with pytest.raises(ValueError, match='4-D'):
        covariance(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match='3-D'):
        covariance_tokens(torch.randn(2, 3, 4, 5))
    with pytest.raises(TypeError, match='floating point'):
        covariance(torch.ones(2, 3, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match='torch.Tensor'):
        covariance([[1.0]])
    with pytest.raises(ValueError, match='square'):
        isqrt(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match='cov must be 3-D'):
        mpn(torch.randn(3, 3))
    with pytest.raises(ValueError, match='iters must be >= 1'):
        isqrt(_spd(), iters=0)
    with pytest.raises(TypeError, match='iters must be an int'):
        isqrt(_spd(), iters=2.5)
    with pytest.raises(ValueError, match='power'):
        mpn(_spd(), power=0)
    with pytest.raises(ValueError, match='m must be 3-D'):
        triu_vec(torch.randn(4, 4))


def test_head_bad_settings_and_input():
    with pytest.raises(ValueError, match="unknown GCP norm 'svd'"):
        GCPHead(16, norm='svd')
    with pytest.raises(ValueError, match=r'dim must be 0 \(no reduction\) or >= 2, got 1'):
        GCPHead(16, dim=1)
    with pytest.raises(ValueError, match='iters must be >= 1'):
        GCPHead(16, dim=8, iters=0)
    with pytest.raises(ValueError, match="pool_type 'avg'"):
        GCPHead(16, pool_type='avg')
    with pytest.raises(ValueError, match='dim must be >= 2'):
        AdaptiveChannelDrop(1)
    head = GCPHead(16, dim=8)
    with pytest.raises(ValueError, match=r'expects 16 input channels \(NCHW\), got 12'):
        head(torch.randn(2, 12, 5, 5))
    with pytest.raises(ValueError, match=r'GCP pooling input must be 4-D \(NCHW\)'):
        head(torch.randn(2, 16, 5))
    with pytest.raises(ValueError, match='expects 8 channels, got 6'):
        AdaptiveChannelDrop(8).train()(torch.randn(2, 6, 3, 3))


@pytest.mark.parametrize('fmt, shape', [('NCHW', (2, 8, 1, 1)), ('NHWC', (2, 1, 1, 8))])
def test_a_map_of_one_position_is_refused(fmt, shape):
    # the centred covariance of one position is zero: the output would be the same for every input
    with pytest.raises(ValueError, match=r'1x1 feature map .* covariance of one position is zero'):
        GCPPool(8, dim=4, input_fmt=fmt)(torch.randn(shape))
    with pytest.raises(ValueError, match=r'an input image needs a side of at least 64 px \(e\.g\. 64x64\)'):
        GCPHead(8, num_classes=3, dim=4, input_fmt=fmt, min_input=64)(torch.randn(shape))
    with pytest.raises(ValueError, match='at least 2 tokens, got 1'):
        GCPPool(8, dim=4, input_fmt='NLC')(torch.randn(2, 1, 8))
    # two positions are enough for an output that depends on the input (no reduction: no ReLU that could zero a
    # channel for every input)
    out = GCPPool(8, dim=0).eval()(torch.randn(3, 8, 1, 2))
    assert out.std(dim=0).min() > 0


def test_settings_that_mean_nothing_are_refused():
    with pytest.raises(ValueError, match=r"power=0.25 is the matrix power of norm='mpn' .* norm='isqrt'"):
        GCPPool(8, norm='isqrt', power=0.25)
    with pytest.raises(ValueError, match=r"iters=3 is the Newton-Schulz iteration count .* norm='mpn'"):
        GCPHead(8, norm='mpn', iters=3)
    with pytest.raises(ValueError, match=r"iters=3 .* norm='none'"):
        GCPPool(8, norm='none', dropcov=True, iters=3)
    with pytest.raises(ValueError, match='dropcov_scale=5.0 is the rate constant of DropCov and needs dropcov=True'):
        GCPPool(8, dropcov_scale=5.0)
    for scale in (-1.0, 0.0):
        with pytest.raises(ValueError, match=r'scale \(the DropCov rate constant\) must be > 0'):
            GCPPool(8, dim=4, norm='none', dropcov=True, dropcov_scale=scale)
    # not given: each norm builds with its own default
    assert GCPPool(8, dim=4, norm='isqrt').norm.iters == 5
    assert GCPPool(8, dim=4, norm='mpn').norm.power == 0.5
    assert GCPPool(8, dim=4, norm='none', dropcov=True).dropcov.scale == 10.0


# --- the reduction width (docs/architectures.md, "Head arguments") ---------------------------------

def test_dim_0_is_no_reduction_and_none_is_refused():
    """dim=0 pools the input channels themselves; None is refused, as timm.create_model would drop it."""
    x = torch.randn(2, 10, 3, 3)
    pool = GCPPool(10, dim=0, norm='none').eval()
    assert pool.dim == 10 and pool.out_features == 55 and isinstance(pool.reduce, torch.nn.Identity)
    torch.testing.assert_close(pool(x), triu_vec(covariance(x)))
    head = GCPHead(10, num_classes=3, dim=0)
    assert head.num_features == 55 and head.fc.in_features == 55
    with pytest.raises(TypeError, match=r"dim=None is not a GCP reduction width: dim=0 \(a model's gcp_dim=0\)"):
        GCPPool(10, dim=None)
    with pytest.raises(ValueError, match='dim must be >= 0, got -1'):
        GCPPool(10, dim=-1)


def test_a_reduction_wider_than_the_input_needs_expand():
    """A dim above in_features only adds parameters: refused, naming the width, the counts and the opt-in."""
    with pytest.raises(ValueError) as info:
        GCPHead(512, dim=4096)
    message = str(info.value)
    reduce_params, per_class = 512 * 4096 + 2 * 4096, 4096 * 4097 // 2 + 1
    assert 'dim=4096 (a model\'s gcp_dim) is wider than the 512 input channels' in message
    assert f'{reduce_params:,} in the reduction and {per_class:,} per class in the classifier' in message
    assert f'{reduce_params + 1000 * per_class:,} in all at 1000 classes' in message
    assert 'use dim <= 512 (dim=0: the covariance of the 512 channels themselves)' in message
    assert 'expand=True (gcp_expand=True)' in message
    wide = GCPPool(8, dim=12, expand=True)
    assert wide.dim == 12 and wide.reduce.conv.out_channels == 12
    assert GCPPool(8, dim=8).dim == 8  # as wide as the input: a reduction of rank up to 8
    # the head rebuilds its pooling with the same opt-in at a new width
    head = GCPHead(16, num_classes=2, dim=12)
    with pytest.raises(ValueError, match='dim=12 .* wider than the 8 input channels'):
        head.reset(2, in_features=8)
    expanded = GCPHead(16, num_classes=2, dim=12, expand=True)
    expanded.reset(2, in_features=8)
    assert expanded.global_pool.in_features == 8 and expanded.global_pool.dim == 12


@pytest.mark.parametrize('kwargs,message', [
    (dict(pool='cov', dim=32), r'dim=32 .* wider than the 16 input channels'),
    (dict(pool='crosscov', dim=20), r'dim=20 .* wider than the 16 input channels: .* \(3,840 in the projection'),
    (dict(pool='crosscov', dim=0), r"dim=0 \(no reduction\) is a setting of pool='cov'"),
])
def test_token_head_dims(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenGCPHead(16, **kwargs)
    if kwargs['dim']:
        assert TokenGCPHead(16, expand=True, **kwargs).representation.dim == kwargs['dim']
    cov = TokenGCPHead(16, num_classes=0, pool='cov', dim=0).eval()
    tokens = torch.randn(2, 5, 16)
    assert cov.representation.out_features == 16 * 17 // 2
    assert cov(tokens[:, 0], tokens).shape == (2, 16 + 136)
