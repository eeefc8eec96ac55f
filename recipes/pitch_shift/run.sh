#!/usr/bin/env bash
# Pitch-shift artifact removal at 48 kHz (the project's origin): clean speech or music is pitch-shifted by
# a few semitones and back with a phase vocoder, which leaves warble and smeared transients; the model
# learns to remove them. Stage 1 trains at 16 kHz, stage 2 fine-tunes at 48 kHz -> 48 kHz.
# Any folder of clean 48 kHz audio works (VCTK, a music collection, ...). See recipes/pitch_shift/README.md.
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
RECIPE_ARGS=("$@")
CALLER_DIR=$PWD  # relative paths given by the user are relative to it
cd "$(dirname "$RECIPE_FILE")/../.."

# <defaults>
train_dir=${TRAIN_DIR:-}                  # folder of clean 48 kHz training audio (or $TRAIN_DIR)
val_dir=${VAL_DIR:-}                      # folder of clean validation audio (or $VAL_DIR)
test_dir=${TEST_DIR:-}                    # folder of clean test audio, degraded once with a fixed seed (or $TEST_DIR)
exp_dir=exp/pitch_shift                   # experiment folder
task=pitch_shift                          # degradation preset (gan_enhance/data/tasks.py)
stage2_in_rate=48000                      # stage 2 is 48 kHz -> 48 kHz
# </defaults>
path_options="train_dir val_dir test_dir"
source recipes/common/pipeline.sh
parse_options "$@"

data_dir=$exp_dir/data
train_clean=$train_dir
test_degraded=$data_dir/test/degraded
test_clean=$data_dir/test/clean
train_data_args="--Data.train_sources [$train_dir] --Data.val_sources [$val_dir] --task $task"

check_paths() {
    require_dir train_dir "$train_dir"
    require_dir val_dir "$val_dir"
    require_dir test_dir "$test_dir"
}

prepare_data() {
    run_cmd gan-enhance degrade "$test_dir" "$data_dir/test" --task "$task" --seed 0 --overwrite \
        --in-sample-rate 48000 --out-sample-rate 48000
}

run_pipeline
