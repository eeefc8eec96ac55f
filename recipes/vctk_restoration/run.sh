#!/usr/bin/env bash
# General restoration and bandwidth extension to 48 kHz on VCTK (0.92), DNS-Challenge style: clean
# 48 kHz speech is degraded on the fly (noise from noise folders, real room impulse responses, band
# limits, clipping, codecs, EQ) by the `restoration` task preset. Stage 1 trains 16 kHz -> 16 kHz,
# stage 2 fine-tunes to 16 kHz -> 48 kHz. Speakers are split into train / validation / test by list.
# See recipes/vctk_restoration/README.md.
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
RECIPE_ARGS=("$@")
CALLER_DIR=$PWD  # relative paths given by the user are relative to it
cd "$(dirname "$RECIPE_FILE")/../.."

# <defaults>
vctk_root=${VCTK_ROOT:-}                  # VCTK-Corpus-0.92 folder holding wav48_silence_trimmed/ (or $VCTK_ROOT)
noise_dirs=${NOISE_DIRS:-}                # noise folders, space separated, e.g. DNS-Challenge noise/ (or $NOISE_DIRS)
rir_dirs=${RIR_DIRS:-}                    # impulse-response folders, space separated (or $RIR_DIRS)
exp_dir=exp/vctk_restoration              # experiment folder
val_speakers="p225 p226"                  # held out for validation
test_speakers="p227 p228 p229 p230"       # held out for the test set (degraded once, with a fixed seed)
task=restoration                          # degradation preset (gan_enhance/data/tasks.py)
# </defaults>
path_options="vctk_root noise_dirs rir_dirs"
source recipes/common/pipeline.sh
parse_options "$@"

data_dir=$exp_dir/data
train_clean=$data_dir/train
test_degraded=$data_dir/test/degraded
test_clean=$data_dir/test/clean
to_list() { local IFS=,; echo "[$*]"; }
# shellcheck disable=SC2086
train_data_args="--Data.train_sources [$data_dir/train] --Data.val_sources [$data_dir/val] --task $task"
# shellcheck disable=SC2086
train_data_args+=" --Data.noise_dirs $(to_list $noise_dirs) --Data.rir_dirs $(to_list $rir_dirs)"

check_paths() {
    require_dir vctk_root "$vctk_root"
    [ -d "$vctk_root/wav48_silence_trimmed" ] || die "$vctk_root/wav48_silence_trimmed is missing; --vctk_root must be the VCTK-Corpus-0.92 folder"
    local dir
    for dir in $noise_dirs; do require_dir noise_dirs "$dir"; done
    for dir in $rir_dirs; do require_dir rir_dirs "$dir"; done
}

# Speaker folders become train / val / test by symbolic links; the test set is degraded once.
prepare_data() {
    local speaker_dir speaker split
    mkdir -p "$data_dir/train" "$data_dir/val" "$data_dir/test_clean_source"
    for speaker_dir in "$vctk_root"/wav48_silence_trimmed/*/; do
        speaker=$(basename "$speaker_dir")
        split=train
        [[ " $val_speakers " == *" $speaker "* ]] && split=val
        [[ " $test_speakers " == *" $speaker "* ]] && split=test_clean_source
        ln -sfn "$(realpath "$speaker_dir")" "$data_dir/$split/$speaker"
    done
    # shellcheck disable=SC2086
    run_cmd gan-enhance degrade "$data_dir/test_clean_source" "$data_dir/test" --task "$task" --seed 0 \
        --overwrite --in-sample-rate 16000 --out-sample-rate 48000 --noise $noise_dirs --rir $rir_dirs
}

run_pipeline
