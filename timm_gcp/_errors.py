"""How a command says what went wrong; `timm_gcp.cli.main` turns it into an exit status and one line.

docs/architecture.md, "Commands": a usage mistake exits 2, a failure exits 1, any other exception is
a bug and keeps its traceback.
"""
import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Type, Union

__all__ = ['CommandError', 'UsageError', 'check_model_kwargs', 'path_problem', 'usage_errors']


class UsageError(Exception):
    """A mistake in a command's input: a bad or conflicting argument, an unknown model, a missing input file."""


class CommandError(Exception):
    """Work a command could not do (a checkpoint that does not fit, a conversion, publish or export that fails)."""


@contextlib.contextmanager
def usage_errors(*types: Type[Exception], prefix: str = '') -> Iterator[None]:
    """Raise the `types` raised inside as UsageError (`prefix` before the message): checks of the user's input."""
    try:
        yield
    except types as e:
        raise UsageError(f'{prefix}{e}') from e


def check_model_kwargs(kwargs: Mapping[str, Any], flag: str = '--model-kwargs') -> None:
    """UsageError for a `KEY=None` among the model arguments `flag` gives.

    timm's ParseKwargs reads `KEY=None` as None and `timm.create_model` drops None arguments, so the
    model would silently take KEY's default; for `gcp_dim`, no reduction is `gcp_dim=0`.
    """
    for key, value in kwargs.items():
        if value is None:
            fix = 'for no reduction pass gcp_dim=0' if key == 'gcp_dim' else f'give {key} a value, or leave it out'
            raise UsageError(f'{flag} {key}=None: timm.create_model drops None arguments, so {key} would silently '
                             f'keep its default; {fix}')


# what a checkpoint file is called, for the files a folder given in its place holds
_CHECKPOINT_SUFFIXES = ('.pth', '.pth.tar', '.pt', '.bin', '.safetensors', '.ckpt')


def path_problem(path: Union[str, Path], kind: str = 'file') -> Optional[str]:
    """Why `path` is not an existing `kind` ('file' or 'folder'), in a few words; None if it is one.

    A folder given for a file names the checkpoint files in it (a train.py run folder for its
    model_best.pth.tar).
    """
    path = Path(path)
    if path.is_file() if kind == 'file' else path.is_dir():
        return None
    if not path.exists():
        return f'no such {kind}'
    if kind == 'folder':
        return 'is a file, not a folder'
    found = sorted((p.name for p in path.iterdir() if p.is_file() and p.name.endswith(_CHECKPOINT_SUFFIXES)),
                   key=lambda name: (name != 'model_best.pth.tar', name))  # train.py's best first
    return 'is a folder, not a file' + (f": give the file, e.g. {path / found[0]} (it holds {', '.join(found)})"
                                         if found else '')
