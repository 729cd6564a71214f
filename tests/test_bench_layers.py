"""The layer benchmark: its straightforward baselines compute the same numbers, and it prints its table."""
import pytest
import torch

from timm_gcp import cli
from timm_gcp.bench.layers import head, saved_matrices
from timm_gcp.bench.reference import (
    dense_centring_covariance, naive_eigh_power, per_call_triu, plain_newton_schulz, straightforward_head,
)
from timm_gcp.measure import peak_tensor_bytes
from timm_gcp.layers import covariance, isqrt, mpn, triu_vec


def test_baselines_equal_the_layers():
    x = torch.randn(3, 12, 5, 5, dtype=torch.float64).relu()
    cov = covariance(x)
    torch.testing.assert_close(dense_centring_covariance(x), cov)
    for iters in (1, 3, 5):
        torch.testing.assert_close(plain_newton_schulz(cov, iters), isqrt(cov, iters))
    torch.testing.assert_close(per_call_triu(cov), triu_vec(cov))
    torch.testing.assert_close(naive_eigh_power(cov + 1e-3 * torch.eye(12)), mpn(cov + 1e-3 * torch.eye(12)))


def test_saved_matrices_counts_distinct_storages():
    x = torch.randn(2, 4, 4, requires_grad=True)
    assert saved_matrices(lambda m: m.bmm(m).bmm(m), x, 4) == 2  # x and x @ x


def test_peak_tensor_bytes_counts_what_is_alive_at_once():
    x = torch.randn(100, 100)

    def fn():
        a, b = x + 1, x * 2  # 40 kB each, alive together
        del a, b
        return x.sum()  # 4 bytes

    assert peak_tensor_bytes(fn) == 80_000


def test_straightforward_head_holds_its_centring_matrices():
    """The original formulation keeps B x N x N floats alive; the head does not come near that."""
    b, c, n = 2, 4, 64
    x = torch.randn(b, c, 8, 8)
    for fn in (head, straightforward_head):
        assert torch.allclose(fn(x), head(x), rtol=1e-4, atol=1e-5)

    def fwd_bwd(fn):
        return lambda: fn(x.requires_grad_(True)).sum().backward()

    assert peak_tensor_bytes(fwd_bwd(straightforward_head)) >= b * n * n * 4
    assert peak_tensor_bytes(fwd_bwd(head)) < b * n * n * 4 / 4


def test_cli_prints_ratio_table(capsys):
    args = ['bench-layers', '--batch-size', '2', '--channels', '8', '--sides', '3', '--rounds', '1',
            '--memory-maps', '3x4']
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert '| 2 | 8 | 9 | head cov+isqrt5+triu f+b |' in out and '| 2 | 8 | 9 | head vs its products fwd |' in out
    assert 'saved B x C x C tensors' in out and 'isqrt3 / isqrt5' in out
    assert '| 2 | 8 | 12 | head f+b peak memory (MiB) |' in out


@pytest.mark.parametrize('argv, expected', [
    (['--memory-maps', '14by14'], "--memory-maps '14by14': not HxW with positive H and W"),
    (['--channels', '128', '0'], '--channels must be at least 1, got 128 0'),
    (['--threads', '-1'], '--threads must be at least 0, got -1'),
])
def test_bad_options_are_named_before_any_timing(argv, expected, capsys):
    assert cli.main(['bench-layers', *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith('timm-gcp bench-layers: error: ') and expected in captured.err
    assert captured.err.count('\n') == 1 and captured.out == ''
