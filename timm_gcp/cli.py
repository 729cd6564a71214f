"""The `timm-gcp` command: one subcommand per module, each with `add_arguments(parser)` and `run(args)`.

Subcommand modules are imported only when used, so `timm-gcp --help` stays fast. `main` is the one
place that turns a command's errors into an exit status and a message (docs/architecture.md, "Commands").
"""
import argparse
import importlib
import sys
from typing import List, Optional

from ._errors import CommandError, UsageError
from ._extras import MissingExtraError
from .models.gcp_backbone import BackboneError
from .models.releases import WeightsUnavailableError

SUBCOMMANDS = {
    'demo': ('timm_gcp.demo.side_by_side', 'train a GCP model and its average-pooling twin on Fashion-MNIST (CPU)'),
    'analyze': ('timm_gcp.analysis.run', 'loss landscape, gradient predictiveness, LR and corruption robustness '
                                         'of a GCP model against its twin, over seeds'),
    'probe': ('timm_gcp.analysis.probe', "a GCP probe against timm's linear probe on the same frozen trunk, over "
                                         'seeds, on Fashion-MNIST (CPU)'),
    'bench': ('timm_gcp.bench.models', 'model throughput, memory and FLOPs against timm baselines'),
    'bench-layers': ('timm_gcp.bench.layers', 'time the GCP layers against the straightforward formulation'),
    'convert': ('timm_gcp.convert.converter', "convert an authors' checkpoint or a train.py one to a timm-gcp export"),
    'publish': ('timm_gcp.hub.publish', 'upload a converted model with an honest card to any Hugging Face Hub repo'),
    'release': ('timm_gcp.hub.release', "convert, measure and publish every authors' file found in a folder"),
    'cards': ('timm_gcp.hub.cards', "write the model cards, the README's model table and docs/checkpoints.md's "
                                   'weights table from the registry'),
    'export-onnx': ('timm_gcp.export.onnx', 'export a model to ONNX and check it against PyTorch with onnxruntime'),
    'launch': ('timm_gcp.launch', "run timm's train.py / validate.py / ... with the GCP models registered"),
}

# exit status 2: a mistake in the command's input; 1: work that could not be done
USAGE_ERRORS = (UsageError, MissingExtraError, BackboneError)
FAILURES = (CommandError, WeightsUnavailableError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='timm-gcp', description='Global covariance pooling models for timm.')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _report(name: str, error: Exception, status: int) -> int:
    print(f'timm-gcp {name}: error: {error}', file=sys.stderr)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    """Run `timm-gcp COMMAND ARGS`; its exit status. Only an unexpected exception (a bug) shows a traceback.

    Ctrl-C prints one line and exits 130, as a shell reports a process ended by SIGINT.
    """
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage / the unknown-command error and exits
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f'timm-gcp {name}', description=SUBCOMMANDS[name][1])
    module.add_arguments(sub)
    try:
        return int(module.run(sub.parse_args(rest)) or 0)
    except USAGE_ERRORS as e:
        return _report(name, e, 2)
    except FAILURES as e:
        return _report(name, e, 1)
    except KeyboardInterrupt:  # the commands write through temporary files: an interrupt leaves nothing behind
        print(f'timm-gcp {name}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
