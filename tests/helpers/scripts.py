"""A train.py look-alike for the launcher tests (`python -m timm_gcp.launch`, `timm-gcp launch`).

It has timm's structure (module-level `config_parser` and `parser`, work under a main guard),
records what it ran with in `<--out>/rank<RANK>.json`, then exits with --exit-code or raises on --fail.
"""
import json
from pathlib import Path

TRAIN_STUB = '''
import argparse, json, os, sys
import timm

config_parser = parser = argparse.ArgumentParser(add_help=False)
parser.add_argument('-c', '--config', default='')
parser = argparse.ArgumentParser()
parser.add_argument('data', nargs='?')
parser.add_argument('--data-dir')
parser.add_argument('--dataset', default='')
parser.add_argument('--train-split', default='train')
parser.add_argument('--val-split', default='validation')
parser.add_argument('--model', default='resnet50')
parser.add_argument('--epochs', type=int, default=300)
parser.add_argument('--out', default='')
parser.add_argument('--exit-code', type=int, default=0)
parser.add_argument('--fail', action='store_true')


def main():
    args_config, remaining = config_parser.parse_known_args()
    if args_config.config:
        import yaml
        with open(args_config.config) as f:
            parser.set_defaults(**yaml.safe_load(f))
    args = parser.parse_args(remaining)
    if args.fail:
        raise RuntimeError('stub failure as asked')
    record = dict(
        name=__name__, argv=sys.argv, model=args.model, epochs=args.epochs, data_dir=args.data_dir,
        registered='resnet18_isqrt' in timm.list_models(), rank=os.environ.get('RANK'),
        world_size=os.environ.get('WORLD_SIZE'), path0=sys.path[0],
    )
    with open(os.path.join(args.out, 'rank%s.json' % os.environ.get('RANK', '')), 'w') as f:
        json.dump(record, f)
    sys.exit(args.exit_code)


if __name__ == '__main__':
    main()
'''


def write_train_stub(folder: Path) -> Path:
    """`folder`/train.py holding the stub (folder created)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'train.py'
    path.write_text(TRAIN_STUB)
    return path


def stub_record(out: Path, rank: str = '') -> dict:
    """What the stub recorded in `out` (for `rank`, '' without torchrun)."""
    with open(out / f'rank{rank}.json') as f:
        return json.load(f)
