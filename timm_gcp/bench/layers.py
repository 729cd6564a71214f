"""`timm-gcp bench-layers`: the GCP layers against the straightforward formulation (`reference`), same process.

`isqrt` is also timed against its own product form (what runs on GPUs and in exported graphs).
Candidates are timed in interleaved rounds and the fastest round is kept (shared machines are
noisy), so read the ratios. Memory is the number of B x C x C tensors saved for backward and, for
the head at larger feature maps (448 px gives N = 784 at stride 16), the peak bytes of the tensors
alive during forward and backward.
"""
import argparse
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from .._errors import UsageError
from ..layers import covariance, isqrt, mpn, triu_vec
from ..measure import peak_tensor_bytes, saved_tensors
from .reference import (dense_centring_covariance, naive_eigh_power, per_call_triu, plain_newton_schulz,
                        straightforward_head)


def head(x: torch.Tensor) -> torch.Tensor:
    """The head's matrix work: covariance, iSQRT (5 iterations), upper triangle."""
    return triu_vec(isqrt(covariance(x), 5))


def saved_matrices(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, c: int) -> int:
    """Number of distinct B x C x C tensors autograd saves for backward of `fn(x)`."""
    size = x.shape[0] * c * c
    return sum(t.numel() == size for t in saved_tensors(lambda: fn(x)).values())


def _interleaved(fns: Dict[str, Callable[[], None]], rounds: int) -> Dict[str, float]:
    best = {name: float('inf') for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: t * 1e3 for name, t in best.items()}


def _fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        leaf = x.detach().requires_grad_(True)
        out = fn(leaf)
        out.backward(torch.ones_like(out))
    return run


def _fwd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            fn(x)
    return run


def bench_config(b: int, c: int, n_side: int, rounds: int) -> List[Tuple[str, float, float, str]]:
    """Rows (operation, ours ms, straightforward ms, note) for one B, C, N."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, n_side, n_side, generator=g).relu()
    cov = covariance(x)

    ops = {
        'covariance': (covariance, dense_centring_covariance, x),
        'isqrt3': (lambda m: isqrt(m, 3), lambda m: plain_newton_schulz(m, 3), cov),
        'isqrt5': (lambda m: isqrt(m, 5), lambda m: plain_newton_schulz(m, 5), cov),
        'isqrt5 vs its products': (lambda m: isqrt(m, 5), lambda m: isqrt(m, 5, eigenbasis=False), cov),
        'mpn': (mpn, naive_eigh_power, cov),
        'triu_vec': (triu_vec, per_call_triu, cov),
        'head cov+isqrt5+triu': (head, straightforward_head, x),
        'head vs its products': (head, lambda t: triu_vec(isqrt(covariance(t), 5, eigenbasis=False)), x),
    }
    fns = {}
    for name, (ours, ref, inp) in ops.items():
        fns[f'{name} fwd/ours'] = _fwd(ours, inp)
        fns[f'{name} fwd/ref'] = _fwd(ref, inp)
        if name != 'triu_vec':
            fns[f'{name} f+b/ours'] = _fwd_bwd(ours, inp)
            fns[f'{name} f+b/ref'] = _fwd_bwd(ref, inp)
    for fn in fns.values():
        fn()  # warm-up: allocator, MKL and the index caches
    times = _interleaved(fns, rounds)

    rows = []
    for name in ops:
        for kind in ('fwd', 'f+b'):
            if f'{name} {kind}/ours' in times:
                rows.append((f'{name} {kind}', times[f'{name} {kind}/ours'], times[f'{name} {kind}/ref'], ''))
    saved_ours = saved_matrices(head, x.requires_grad_(True), c)
    saved_ref = saved_matrices(straightforward_head, x.requires_grad_(True), c)
    rows.append(('saved B x C x C tensors (head f+b)', saved_ours, saved_ref, 'count'))
    return rows


def bench_memory(b: int, c: int, h: int, w: int, rounds: int) -> List[Tuple[str, float, float, str]]:
    """Rows for the head at an H x W map: forward+backward time and peak memory (MiB), ours and straightforward."""
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(0)).relu()
    fns = {'ours': _fwd_bwd(head, x), 'ref': _fwd_bwd(straightforward_head, x)}
    peak = {name: peak_tensor_bytes(fn) / 2 ** 20 for name, fn in fns.items()}  # also the warm-up
    times = _interleaved(fns, rounds)
    return [
        ('head cov+isqrt5+triu f+b', times['ours'], times['ref'], ''),
        ('head f+b peak memory (MiB)', peak['ours'], peak['ref'], 'MiB'),
    ]


def format_table(results: Dict[Tuple[int, int, int], List[Tuple[str, float, float, str]]]) -> str:
    lines = ['| B | C | N | operation | ours (ms) | straightforward (ms) | ratio |', '|---|---|---|---|---|---|---|']
    for (b, c, n), rows in results.items():
        for name, ours, ref, note in rows:
            if note == 'count':
                lines.append(f'| {b} | {c} | {n} | {name} | {ours:d} | {ref:d} | {ours / ref:.2f} |')
            elif note == 'MiB':
                lines.append(f'| {b} | {c} | {n} | {name} | {ours:.1f} | {ref:.1f} | {ours / ref:.2f} |')
            else:
                lines.append(f'| {b} | {c} | {n} | {name} | {ours:.2f} | {ref:.2f} | {ours / ref:.2f} |')
        timed = {name: ours for name, ours, _, note in rows if not note}
        if 'isqrt3 fwd' not in timed:
            continue
        lines.append(
            f'| {b} | {c} | {n} | isqrt3 / isqrt5 (fwd, f+b) | | | '
            f'{timed["isqrt3 fwd"] / timed["isqrt5 fwd"]:.2f}, {timed["isqrt3 f+b"] / timed["isqrt5 f+b"]:.2f} |')
        lines.append(
            f'| {b} | {c} | {n} | triu_vec / head (fwd) | | | '
            f'{timed["triu_vec fwd"] / timed["head cov+isqrt5+triu fwd"]:.3f} |')
    return '\n'.join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--channels', type=int, nargs='+', default=[128, 256])
    parser.add_argument('--sides', type=int, nargs='+', default=[7, 14], help='feature map side (N = side^2)')
    parser.add_argument('--memory-maps', nargs='*', default=['14x14', '28x28', '28x56'], metavar='HxW',
                        help='feature maps for the head memory rows (N = 196, 784, 1568: 224 and 448 px)')
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds (fastest kept)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')


def check_args(args: argparse.Namespace) -> List[Tuple[int, int]]:
    """H x W of every --memory-maps entry; UsageError naming the first bad option, before any timing."""
    sizes = {'--batch-size': [args.batch_size], '--channels': args.channels, '--sides': args.sides,
             '--rounds': [args.rounds]}
    for flag, values in sizes.items():
        if min(values) < 1:
            raise UsageError(f'{flag} must be at least 1, got {" ".join(map(str, values))}')
    if args.threads < 0:
        raise UsageError(f'--threads must be at least 0, got {args.threads}')
    maps = []
    for size in args.memory_maps:
        h, _, w = size.partition('x')
        if not (h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
            raise UsageError(f"--memory-maps '{size}': not HxW with positive H and W (e.g. 14x14)")
        maps.append((int(h), int(w)))
    return maps


def run(args: argparse.Namespace) -> int:
    maps = check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs: Sequence[Tuple[int, int, int]] = [
        (args.batch_size, c, side) for c in args.channels for side in args.sides]
    results = {}
    for b, c, side in configs:
        print(f'benchmarking B={b} C={c} N={side * side} ...', flush=True)
        results[(b, c, side * side)] = bench_config(b, c, side, args.rounds)
    memory = {}
    for c in args.channels:
        for h, w in maps:
            print(f'head memory B={args.batch_size} C={c} N={h * w} ...', flush=True)
            memory[(args.batch_size, c, h * w)] = bench_memory(args.batch_size, c, h, w, args.rounds)
    print(f'\ntorch {torch.__version__}, {torch.get_num_threads()} threads, float32, fastest of {args.rounds} rounds\n')
    print(format_table(results))
    if memory:
        print()
        print(format_table(memory))
    return 0
