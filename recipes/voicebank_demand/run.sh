#!/usr/bin/env bash
# VoiceBank-DEMAND speech denoising at 16 kHz (Valentini et al., 2016): paired noisy/clean recordings of
# 28 training speakers and 2 test speakers. Stage 1 only (16 kHz -> 16 kHz); speakers p226 and p287 are
# held out of training for validation, as is customary. See recipes/voicebank_demand/README.md.
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
RECIPE_ARGS=("$@")
CALLER_DIR=$PWD  # relative paths given by the user are relative to it
cd "$(dirname "$RECIPE_FILE")/../.."

# <defaults>
vbd_root=${VBD_ROOT:-}                    # folder holding the four *_wav folders of the corpus (or $VBD_ROOT)
exp_dir=exp/voicebank_demand              # experiment folder
val_speakers="p226 p287"                  # training speakers held out for validation
stage2_config=none                        # 16 kHz only: no 48 kHz stage
task=denoise                              # preset for the baselines' naming and optional shards
# </defaults>
path_options="vbd_root"
source recipes/common/pipeline.sh
parse_options "$@"

data_dir=$exp_dir/data
test_degraded=$vbd_root/noisy_testset_wav
test_clean=$vbd_root/clean_testset_wav
train_data_args="--Data.train_paired [$data_dir/train/noisy,$data_dir/train/clean]"
train_data_args+=" --Data.val_paired [$data_dir/val/noisy,$data_dir/val/clean] --Data.train_sources [] --Data.val_sources []"
train_data_args+=" --task $task"

check_paths() {
    require_dir vbd_root "$vbd_root"
    local name
    for name in clean_trainset_28spk_wav noisy_trainset_28spk_wav clean_testset_wav noisy_testset_wav; do
        [ -d "$vbd_root/$name" ] || die "$vbd_root/$name is missing; --vbd_root must hold the corpus's four *_wav folders"
    done
}

# Split the training speakers into train and validation folders of symbolic links (no copies).
prepare_data() {
    local kind file speaker split
    for kind in noisy clean; do
        for split in train val; do mkdir -p "$data_dir/$split/$kind"; done
        for file in "$vbd_root/${kind}_trainset_28spk_wav"/*.wav; do
            speaker=$(basename "$file" | cut -d_ -f1)
            split=train
            [[ " $val_speakers " == *" $speaker "* ]] && split=val
            ln -sf "$(realpath "$file")" "$data_dir/$split/$kind/"
        done
    done
    log "train: $(ls "$data_dir/train/clean" | wc -l) pairs, val: $(ls "$data_dir/val/clean" | wc -l) pairs"
}

run_pipeline
