"""Optional dependencies: importing one that is missing names the extra that installs it."""
import importlib
from types import ModuleType

__all__ = ['MissingExtraError', 'require']


class MissingExtraError(ImportError):
    """An optional dependency that is not installed; the message names the pip extra."""


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError saying `pip install "timm-gcp[extra]"`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = module.split('.')[0]
        raise MissingExtraError(
            f'{package} is not installed; it comes with the [{extra}] extra: pip install "timm-gcp[{extra}]"'
        ) from e
