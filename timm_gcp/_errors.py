"""How a command says what went wrong; `timm_gcp.cli.main` turns it into an exit status and one line.

docs/architecture.md, "Commands": a usage mistake exits 2, a failure exits 1, any other exception is
a bug and keeps its traceback.
"""
import contextlib
from typing import Iterator, Type

__all__ = ['CommandError', 'UsageError', 'usage_errors']


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
