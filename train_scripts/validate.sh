#!/usr/bin/env bash
# Evaluate a timm-gcp model with timm's validate.py, through the timm_gcp launcher.
#
#   TIMM_SCRIPTS_DIR=/path/to/pytorch-image-models \
#       bash train_scripts/validate.sh NUM_GPUS MODEL|CONFIG.yaml DATA_DIR [validate.py arguments...]
#
# MODEL is a model name (arch or arch.tag); a recipe CONFIG.yaml from train_scripts/ gives its model.
# validate.py runs one process; NUM_GPUS goes to its --num-gpu (DataParallel). Without --checkpoint,
# validate.py loads the pretrained weights. Examples:
#   validate.sh 1 ms_resnet50_isqrt.tpami_in1k /data/imagenet
#   validate.sh 8 train_scripts/vit_dropcov_small.dc_in1k.yaml /data/imagenet \
#       --checkpoint output/train/RUN/model_best.pth.tar --use-ema
set -euo pipefail

source "$(dirname "$0")/wrapper_checks.sh"
check_wrapper_args validate.py 'NUM_GPUS MODEL|CONFIG.yaml DATA_DIR [validate.py args...]' "$@"
num_gpus=$1 model=$2 data_dir=$3
shift 3
python=${PYTHON:-python}

case $model in
    *.yaml | *.yml)
        config=$model
        # the launcher's reader: a missing file, invalid YAML or a non-mapping is named, not a traceback
        model=$("$python" -c 'import sys
from timm_gcp.launch import LaunchError, load_config
try:
    print(load_config(sys.argv[1]).get("model") or "")
except LaunchError as e:
    sys.exit(f"validate.sh: {e}")' "$config") || exit 2
        if [ -z "$model" ]; then echo "validate.sh: config file '$config' names no model" >&2; exit 2; fi ;;
esac
exec "$python" -m timm_gcp.launch "$TIMM_SCRIPTS_DIR/validate.py" --model "$model" --data-dir "$data_dir" \
    --num-gpu "$num_gpus" "$@"
