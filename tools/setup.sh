#!/usr/bin/env bash
# Everything a fresh machine needs for the demo and the tests: Fashion-MNIST from Debian,
# torch, this package with its demo, scripts and test extras, and timm's own model test suite. Safe to re-run.
# It installs into the first `python` (or `python3`) on PATH, unless that interpreter is externally
# managed (PEP 668: a Debian 12 / Ubuntu 24.04 system Python, where pip refuses): then into a project
# virtual environment, .venv/, which `bash tools/run.sh COMMAND` puts first on PATH.
set -euo pipefail

stdlib_of() { "$1" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))'; }
in_venv() { "$1" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; }

# PYTHON [STDLIB]: whether pip refuses PYTHON (the EXTERNALLY-MANAGED marker in its stdlib; a venv is exempt)
externally_managed() {
    ! in_venv "$1" && [ -f "${2:-$(stdlib_of "$1")}/EXTERNALLY-MANAGED" ]
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# the interpreter to install into: the one on PATH, or .venv/'s where pip would refuse it
setup_python() {
    local python
    python="$(command -v python || command -v python3)"
    if ! externally_managed "$python"; then
        echo "$python"
        return
    fi
    echo "tools/setup.sh: $python is externally managed (PEP 668): installing into .venv/" >&2
    if [ ! -x .venv/bin/python ]; then
        # Debian and Ubuntu ship venv's ensurepip separately
        "$python" -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv >&2; "$python" -m venv .venv; }
    fi
    echo "$PWD/.venv/bin/python"
}

main() {
    cd "$(dirname "$0")/.."
    if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
        apt_install dataset-fashion-mnist
    fi
    local python
    python="$(setup_python)"
    "$python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
    "$python" -m pip install -q -e ".[demo,scripts,test]"
    PATH="$(dirname "$python"):$PATH" bash tools/fetch_timm_tests.sh
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
