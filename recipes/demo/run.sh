#!/usr/bin/env bash
# Demo: the whole two-stage recipe on synthetic speech it writes itself, on CPU in a few minutes.
# Stage 1 trains a small 16 kHz -> 16 kHz denoiser, stage 2 fine-tunes it to 16 kHz -> 48 kHz, then the
# generator is exported, a test set is enhanced and scored against baselines. The model is far too small
# and trained far too briefly to be useful: the point is that every step runs. See recipes/demo/README.md.
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
RECIPE_ARGS=("$@")
CALLER_DIR=$PWD  # relative paths given by the user are relative to it
cd "$(dirname "$RECIPE_FILE")/../.."

# <defaults>
exp_dir=exp/demo                                   # experiment folder
task=denoise                                       # degradation preset (gan_enhance/data/tasks.py)
train_files=24                                     # synthetic training files (4 s each)
test_files=3                                       # synthetic test files (8 s each)
stage1_config=recipes/demo/conf/stage1.yml         # conf/stage1_16k.yml made small (conf/small.yml)
stage2_config=recipes/demo/conf/stage2.yml         # conf/stage2_48k.yml made small
steps=40                                           # training steps per stage (GAN from step 20)
wavlm=none                                         # WavLM loss off (conf/small.yml weighs it 0 too); see README
# </defaults>
source recipes/common/pipeline.sh
parse_options "$@"

data_dir=$exp_dir/data
train_clean=$data_dir/clean/train
test_degraded=$data_dir/test/degraded
test_clean=$data_dir/test/clean
train_data_args="--Data.train_sources [$train_clean] --Data.val_sources [$data_dir/clean/val]"
train_args="--Trainer.max_steps $steps $train_args"

prepare_data() {
    run_cmd gan-enhance synth "$train_clean" --files "$train_files" --seconds 4 --sample-rate 48000 --seed 0
    run_cmd gan-enhance synth "$data_dir/clean/val" --files 2 --seconds 4 --sample-rate 48000 --seed 1
    run_cmd gan-enhance synth "$data_dir/clean/test" --files "$test_files" --seconds 8 --sample-rate 48000 --seed 2
    run_cmd gan-enhance degrade "$data_dir/clean/test" "$data_dir/test" --task "$task" --seed 0 --overwrite \
        --in-sample-rate 16000 --out-sample-rate 48000
}

run_pipeline
