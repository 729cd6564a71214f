#!/usr/bin/env bash
# Evaluate a timm-gcp model with timm's validate.py, through the timm_gcp launcher.
#
#   TIMM_SCRIPTS_DIR=/path/to/pytorch-image-models \
#       bash train_scripts/validate.sh NUM_GPUS MODEL|CONFIG.yaml DATA_DIR [validate.py arguments...]
#
# MODEL is a model name (arch or arch.tag); a recipe CONFIG.yaml from train_scripts/ gives its model.
# validate.py runs one process; NUM_GPUS goes to its --num-gpu (DataParallel). Without --checkpoint,
# validate.py loads the pretrained weights. Examples:
#   validate.sh 1 resnet50_isqrt.tpami_in1k /data/imagenet
#   validate.sh 8 train_scripts/vit_dropcov_small.dc_in1k.yaml /data/imagenet \
#       --checkpoint output/train/RUN/model_best.pth.tar --use-ema
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: TIMM_SCRIPTS_DIR=/path/to/pytorch-image-models $0 NUM_GPUS MODEL|CONFIG.yaml DATA_DIR" \
         "[validate.py args...]" >&2
    exit 2
fi
if [ -z "${TIMM_SCRIPTS_DIR:-}" ]; then
    echo "validate.sh: TIMM_SCRIPTS_DIR is not set: point it at a folder holding timm's validate.py (timm's" \
         "scripts are not on PyPI: git clone https://github.com/huggingface/pytorch-image-models)" >&2
    exit 2
fi
num_gpus=$1 model=$2 data_dir=$3
shift 3
case $num_gpus in
    '' | *[!0-9]* | 0) echo "validate.sh: NUM_GPUS must be a positive integer, got '$num_gpus'" >&2; exit 2 ;;
esac
python=${PYTHON:-python}

case $model in
    *.yaml | *.yml)
        config=$model
        if [ ! -f "$config" ]; then echo "validate.sh: config file '$config' not found" >&2; exit 2; fi
        model=$("$python" -c 'import sys, yaml; print((yaml.safe_load(open(sys.argv[1])) or {}).get("model", ""))' \
            "$config")
        if [ -z "$model" ]; then echo "validate.sh: config file '$config' names no model" >&2; exit 2; fi ;;
esac
exec "$python" -m timm_gcp.launch "$TIMM_SCRIPTS_DIR/validate.py" --model "$model" --data-dir "$data_dir" \
    --num-gpu "$num_gpus" "$@"
