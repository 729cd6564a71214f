"""The layer benchmark: its straightforward baselines compute the same numbers, and it prints its table."""
import torch

from timm_gcp import cli
from timm_gcp.bench.layers import (
    dense_centring_covariance, naive_eigh_power, per_call_triu, plain_newton_schulz, saved_matrices,
)
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


def test_cli_prints_ratio_table(capsys):
    assert cli.main(['bench-layers', '--batch-size', '2', '--channels', '8', '--sides', '3', '--rounds', '1']) == 0
    out = capsys.readouterr().out
    assert '| 2 | 8 | 9 | head cov+isqrt5+triu f+b |' in out
    assert 'saved B x C x C tensors' in out and 'isqrt3 / isqrt5' in out
