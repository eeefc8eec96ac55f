#!/usr/bin/env bash
# The two-stage recipe on your own data: clean speech in any folders (searched recursively) or CSV/JSONL
# manifests (a `path` column, optionally `duration`), plus optional noise and impulse-response folders.
# Stage 1 holds out validation and test sets (by file, or whole speakers with --speaker_pattern), writes
# manifests and degrades the test set once; stage 3 trains 16 kHz -> 16 kHz, stage 4 fine-tunes it to
# 16 kHz -> 48 kHz (--stage2_config none: 16 kHz only). Offline: --wavlm PATH (a local WavLM folder) or
# --wavlm none. See recipes/folders/README.md.
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
RECIPE_ARGS=("$@")
CALLER_DIR=$PWD  # relative paths given by the user are relative to it
cd "$(dirname "$RECIPE_FILE")/../.."

# <defaults>
speech=${SPEECH:-}                        # clean speech folders / manifests, space separated (or $SPEECH)
noise=${NOISE:-}                          # noise folders, space separated; empty: synthetic noise (or $NOISE)
rir=${RIR:-}                              # impulse-response folders, space separated; empty: synthetic rooms (or $RIR)
val_speech=                               # validation speech folders / manifests; empty: held out of --speech
test_speech=                              # test speech folders / manifests; empty: held out of --speech
val_size=0.05                             # held out for validation: a share (< 1) or a count (>= 1) of files or speakers
test_size=0.05                            # held out for the test set, likewise
speaker_pattern=                          # regex naming a file's speaker in its path (first group), e.g. '^([^/]+)/'; empty: split by file
split_seed=0                              # seed of the held-out draw
min_duration=1.0                          # shorter files (seconds) are left out
task=restoration                          # degradation preset (gan_enhance/data/tasks.py)
size=full                                 # full: the stage configs; small: recipes/folders/conf/small_stage*.yml (CPU smoke test)
exp_dir=exp/folders                       # experiment folder
# </defaults>
path_options="speech noise rir val_speech test_speech"
source recipes/common/pipeline.sh
parse_options "$@"

case "$size" in
    full) ;;
    small)
        [ "$stage1_config" = conf/stage1_16k.yml ] && stage1_config=recipes/folders/conf/small_stage1.yml
        [ "$stage2_config" = conf/stage2_48k.yml ] && stage2_config=recipes/folders/conf/small_stage2.yml
        ;;
    *) die "--size is '$size'; use full or small" ;;
esac

data_dir=$exp_dir/data
train_clean=$data_dir/train.csv
test_degraded=$data_dir/test/degraded
test_clean=$data_dir/test/clean
# The final model's rates, which the test set is degraded for.
test_in_rate=16000
test_out_rate=16000
if [ "$stage2_config" != none ]; then
    test_in_rate=$stage2_in_rate
    test_out_rate=48000
fi
to_list() { local IFS=,; echo "[$*]"; }
# shellcheck disable=SC2086
train_data_args="--Data.train_sources [$data_dir/train.csv] --Data.val_sources [$data_dir/val.csv] --task $task"
# shellcheck disable=SC2086
train_data_args+=" --Data.noise_dirs $(to_list $noise) --Data.rir_dirs $(to_list $rir)"

check_paths() {
    [ -n "$speech" ] || die "--speech is not set; give clean speech folders or manifests (see --help)"
    local name path
    for name in speech val_speech test_speech; do
        for path in ${!name}; do
            [ -e "$path" ] || die "--${name} ${path}: no such folder or manifest; fix the path"
        done
    done
    for path in $noise; do require_dir noise "$path"; done
    for path in $rir; do require_dir rir "$path"; done
}

prepare_data() {
    local given=()
    # shellcheck disable=SC2206
    [ -n "$val_speech" ] && given+=(--val $val_speech)
    # shellcheck disable=SC2206
    [ -n "$test_speech" ] && given+=(--test $test_speech)
    # shellcheck disable=SC2086
    run_cmd python recipes/folders/local/split_data.py --speech $speech "${given[@]}" \
        --val-size "$val_size" --test-size "$test_size" --speaker-pattern "$speaker_pattern" \
        --seed "$split_seed" --min-duration "$min_duration" --out "$data_dir"
    rm -rf "$data_dir/test"
    # shellcheck disable=SC2086
    run_cmd gan-enhance degrade "$data_dir/test_clean" "$data_dir/test" --task "$task" --seed 0 --overwrite \
        --in-sample-rate "$test_in_rate" --out-sample-rate "$test_out_rate" --noise $noise --rir $rir
}

run_pipeline
