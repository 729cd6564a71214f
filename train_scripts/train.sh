#!/usr/bin/env bash
# Train with timm's train.py on NUM_GPUS GPUs of this machine: torchrun starts one process per GPU,
# each through the timm_gcp launcher, so every rank has the GCP models registered.
#
#   TIMM_SCRIPTS_DIR=/path/to/pytorch-image-models \
#       bash train_scripts/train.sh NUM_GPUS CONFIG.yaml DATA_DIR [train.py arguments...]
#
# CONFIG is a recipe from train_scripts/ (train.py --config); arguments after DATA_DIR override it.
# batch_size is per GPU and the LR follows the global batch (lr_base x batch_size x NUM_GPUS /
# lr_base_size), so fewer GPUs train a smaller batch at a proportionally smaller LR; pass
# --batch-size (recipe's global batch / NUM_GPUS) or --grad-accum-steps to keep the recipe's batch.
set -euo pipefail

source "$(dirname "$0")/wrapper_checks.sh"
check_wrapper_args train.py 'NUM_GPUS CONFIG.yaml DATA_DIR [train.py args...]' "$@"
num_gpus=$1 config=$2 data_dir=$3
shift 3
python=${PYTHON:-python}
script=$TIMM_SCRIPTS_DIR/train.py

# check the config keys, the model and the data folder once, before torchrun starts the ranks
"$python" -m timm_gcp.launch --check-only "$script" --config "$config" --data-dir "$data_dir" "$@"
exec "$python" -m torch.distributed.run --standalone --nproc_per_node="$num_gpus" \
    -m timm_gcp.launch --no-check "$script" --config "$config" --data-dir "$data_dir" "$@"
