#!/usr/bin/env bash
# Fetch timm's own model test suite (tests/ of the installed timm's sdist on PyPI) into
# .cache/timm-tests-<version>, where tests/test_timm_suite.py runs it against every model we register.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(python -c "import timm; print(timm.__version__)")
dest=".cache/timm-tests-$version"
if [ -f "$dest/test_models.py" ]; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download "timm==$version" --no-binary :all: --no-deps -d "$tmp" -q
tar xzf "$tmp/timm-$version.tar.gz" -C "$tmp"
mkdir -p "$dest.partial"
cp "$tmp/timm-$version/tests/"{__init__.py,conftest.py,test_models.py} "$dest.partial/"
python - "$tmp/timm-$version/pyproject.toml" "$dest.partial/pytest.ini" <<'PY'
import sys, tomllib
markers = tomllib.load(open(sys.argv[1], 'rb'))['tool']['pytest']['ini_options']['markers']
with open(sys.argv[2], 'w') as f:
    f.write('[pytest]\nmarkers =\n' + ''.join(f'    {m}\n' for m in markers))
PY
mv "$dest.partial" "$dest"
echo "timm $version tests in $dest"
