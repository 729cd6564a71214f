#!/usr/bin/env bash
# Everything a fresh machine needs for the demo and the tests: Fashion-MNIST from Debian,
# torch, this package with its demo and test extras, and timm's own model test suite. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
    SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[demo,test]"
bash tools/fetch_timm_tests.sh
