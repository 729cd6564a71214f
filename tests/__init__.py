"""timm-gcp's test suite; shared helpers live in `tests.helpers`."""
