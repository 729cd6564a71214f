"""The `timm-gcp` command: one subcommand per module, each with `add_arguments(parser)` and `run(args)`.

Subcommand modules are imported only when used, so `timm-gcp --help` stays fast.
"""
import argparse
import importlib
import sys
from typing import List, Optional

SUBCOMMANDS = {
    'demo': ('timm_gcp.demo', 'train a GCP model and its average-pooling twin on Fashion-MNIST (CPU)'),
    'bench': ('timm_gcp.benchmark', 'model throughput, memory and FLOPs against timm baselines'),
    'bench-layers': ('timm_gcp.bench_layers', 'time the GCP layers against the straightforward formulation'),
    'convert': ('timm_gcp.convert', 'convert an original GCP checkpoint to a timm-gcp safetensors file'),
    'publish': ('timm_gcp.publish', 'export a model with its card and upload it to the Hugging Face Hub'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='timm-gcp', description='Global covariance pooling models for timm.')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage / the unknown-command error and exits
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f'timm-gcp {name}', description=SUBCOMMANDS[name][1])
    module.add_arguments(sub)
    return int(module.run(sub.parse_args(rest)) or 0)


if __name__ == '__main__':
    sys.exit(main())
