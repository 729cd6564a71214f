"""`timm-gcp` run in the test process, for the tests of what a command does on Ctrl-C."""
from typing import List

import pytest

from timm_gcp import cli


def main_interrupted(argv: List[str]) -> int:
    """`cli.main(argv)`'s exit status; a KeyboardInterrupt that escapes it fails the test (pytest would stop)."""
    try:
        return cli.main(argv)
    except KeyboardInterrupt:
        pytest.fail('KeyboardInterrupt escaped timm_gcp.cli.main')
