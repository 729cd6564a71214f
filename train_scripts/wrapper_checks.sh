# Argument checks shared by train.sh and validate.sh (sourced, not run).
#
#   check_wrapper_args SCRIPT USAGE_ARGS "$@"
#
# Exits 2 with a message when fewer than three arguments are given, when TIMM_SCRIPTS_DIR is not set
# (SCRIPT, e.g. train.py, is what it must hold) or when the first argument, NUM_GPUS, is no positive integer.
check_wrapper_args() {
    local script=$1 usage=$2 wrapper
    wrapper=$(basename "$0")
    shift 2
    if [ $# -lt 3 ]; then
        echo "usage: TIMM_SCRIPTS_DIR=/path/to/pytorch-image-models $0 $usage" >&2
        exit 2
    fi
    if [ -z "${TIMM_SCRIPTS_DIR:-}" ]; then
        echo "$wrapper: TIMM_SCRIPTS_DIR is not set: point it at a folder holding timm's $script (timm's" \
             "scripts are not on PyPI: git clone https://github.com/huggingface/pytorch-image-models)" >&2
        exit 2
    fi
    case $1 in
        '' | *[!0-9]* | 0) echo "$wrapper: NUM_GPUS must be a positive integer, got '$1'" >&2; exit 2 ;;
    esac
}
