# The stages every recipe shares (sourced by recipes/<name>/run.sh after its own defaults block).
# A recipe defines `prepare_data` (stage 1) and the variables below that it needs to differ; everything
# here can be overridden on its command line as --name value.
#
#   1  prepare data            recipe-specific: write lists / synthetic data / a test set (paths are
#                              checked by its check_paths before any stage)
#   2  precompute shards       optional (use_shards=true): degraded/clean pairs for stage 3 and stage 4
#   3  train stage 1           conf/stage1_16k.yml (16 kHz -> 16 kHz): regression warm-up, then GAN
#   4  train stage 2           conf/stage2_48k.yml (16 kHz -> 48 kHz), generator fine-tuned from stage 1
#   5  export                  the final stage's generator alone -> $exp_dir/model
#   6  enhance                 the test set's degraded files -> $exp_dir/enhanced
#   7  evaluate and compare    metrics vs the clean files, against baselines, with paired statistics
#
# Rerunning skips finished stages (sentinels in $exp_dir/.done); an interrupted training stage resumes
# from its latest checkpoint. $exp_dir/commands.sh records every command that ran; $exp_dir/resume.sh
# continues an interrupted or failed run from its stage. Each training stage first runs
# `gan-enhance train --check`, which proves the data, WavLM and (stage 2) stage 1's model loadable.

# <defaults>
stage=${stage:-1}                                   # first stage to run
stop_stage=${stop_stage:-7}                         # last stage to run
force=${force:-false}                               # true: rerun stages that are already done
exp_dir=${exp_dir:-exp/recipe}                      # everything this recipe writes goes here
stage1_config=${stage1_config:-conf/stage1_16k.yml} # stage-1 config
stage2_config=${stage2_config:-conf/stage2_48k.yml} # stage-2 config; "none" skips stage 2
train_args=${train_args:-}                          # overrides for both stages, e.g. "--Trainer.batch_size 8"
stage1_args=${stage1_args:-}                        # overrides for stage 1 only
stage2_args=${stage2_args:-}                        # overrides for stage 2 only
stage2_in_rate=${stage2_in_rate:-16000}            # stage-2 input rate (its output rate is the config's)
nproc=${nproc:-1}                                   # processes (GPUs) per node; > 1 trains under torchrun
use_shards=${use_shards:-false}                     # true: precompute training pairs into shards (stage 2)
shard_items=${shard_items:-20000}                   # pairs per shard set
export_tag=${export_tag:-best}                      # checkpoint to export: best, latest or <N>k
enhance_args=${enhance_args:-}                      # extra options for gan-enhance enhance
evaluate_args=${evaluate_args:-}                    # extra options for gan-enhance evaluate, e.g. "--metrics si_sdr,stoi"
baselines=${baselines:-identity spectral-gating}    # systems compared (identity = the input, the reference)
wavlm=${wavlm:-microsoft/wavlm-large}               # WavLM of the perceptual loss: hub id, folder (save_pretrained) or none (off)
# </defaults>

PIPELINE_FILE=${BASH_SOURCE[0]}
source "$(dirname "$PIPELINE_FILE")/stages.sh"
# Options holding paths, relative to where the recipe was started (a recipe adds its data folders to
# path_options, and options naming a file it may hold elsewhere to file_options, before sourcing this file).
path_options="exp_dir ${path_options:-}"
file_options="stage1_config stage2_config wavlm ${file_options:-}"

# Variables a recipe must set (in its defaults or prepare_data): train_data_args (the --Data.* overrides
# pointing at its training data), test_degraded and test_clean (the test set), task (degradation preset
# for shards and baselines).

final_run() {
    if [ "$stage2_config" = none ]; then echo stage1; else echo stage2; fi
}

# The stage that trains the final run.
final_train_stage() {
    if [ "$stage2_config" = none ]; then echo 3; else echo 4; fi
}

# check_wavlm: before anything runs, a WavLM that cannot load (offline and not cached, a folder without
# weights) stops the recipe in one line instead of at the first training stage.
check_wavlm() {
    [ "$wavlm" = none ] && return 0
    local message
    message=$(python -c '
import sys

from gan_enhance.errors import ConfigError
from gan_enhance.nn.wavlm import locate_wavlm

hint = "pass a local folder with --wavlm PATH or turn the loss off with --wavlm none"
try:
    source = locate_wavlm(sys.argv[1], "--wavlm", hint)
except ConfigError as error:
    sys.exit(str(error))
print(f"--wavlm {sys.argv[1]}: {source.describe()}")
' "$wavlm" 2>&1) || die "$message"
    log "$message"
}

# has_run NAME [TAG]: the run has a checkpoint (TAG, else best or latest).
has_run() {
    local dir="$exp_dir/runs/$1/checkpoints" tag=${2:-}
    if [ -n "$tag" ]; then
        [ -e "$dir/$tag" ]
    else
        [ -e "$dir/best" ] || [ -e "$dir/latest" ]
    fi
}

# train_stage NAME CONFIG EXTRA...: check the run (train --check), then train it in $exp_dir/runs/NAME
# (resumed if it has a checkpoint).
train_stage() {
    local name=$1 config=$2
    shift 2
    local run_dir="$exp_dir/runs/$name"
    local launcher=(gan-enhance train)
    if [ "$nproc" -gt 1 ]; then
        launcher=(torchrun --standalone --nproc_per_node "$nproc" -m gan_enhance train)
    fi
    local resume=()
    if [ -e "$run_dir/checkpoints/latest" ]; then
        log "resuming $run_dir from its latest checkpoint"
        resume=(--resume)
    fi
    local model=(--WavLMFeatureLoss.model "$wavlm")
    [ "$wavlm" = none ] && model=(--lambdas.wavlm/loss 0)
    # Word splitting of the *_args strings is intended: they hold --Key value pairs (later ones win).
    # shellcheck disable=SC2086
    local args=(--args.load "$config" --name "$name" --runs_dir "$exp_dir/runs" $train_data_args
        "${model[@]}" $train_args "$@")
    run_cmd gan-enhance train "${args[@]}" --check
    run_cmd "${launcher[@]}" "${args[@]}" "${resume[@]}"
}

precompute_shards() {
    require_input 2 "$exp_dir/.done/stage1" 1 "the prepared data"
    # shellcheck disable=SC2086
    run_cmd gan-enhance preprocess --clean $train_clean --task "$task" --output "$exp_dir/shards/stage1" \
        --items "$shard_items" --in-sample-rate 16000 --out-sample-rate 16000
    if [ "$stage2_config" != none ]; then
        # shellcheck disable=SC2086
        run_cmd gan-enhance preprocess --clean $train_clean --task "$task" --output "$exp_dir/shards/stage2" \
            --items "$shard_items" --in-sample-rate "$stage2_in_rate" --out-sample-rate 48000
    fi
}

train_stage1() {
    require_input 3 "$exp_dir/.done/stage1" 1 "the prepared data"
    local shards=()
    if [ "$use_shards" = true ]; then
        require_input 3 "$exp_dir/shards/stage1" 2 "the training pairs"
        shards=(--Data.train_shards "$exp_dir/shards/stage1" --Data.train_sources "[]")
    fi
    # shellcheck disable=SC2086
    train_stage stage1 "$stage1_config" "${shards[@]}" $stage1_args
}

train_stage2() {
    require_input 4 "$exp_dir/.done/stage1" 1 "the prepared data"
    has_run stage1 || die "stage 4 needs the stage-1 model ($exp_dir/runs/stage1/checkpoints), which" \
        "stage 3 makes; run it first (--stage 3)"
    local shards=()
    if [ "$use_shards" = true ]; then
        require_input 4 "$exp_dir/shards/stage2" 2 "the training pairs"
        shards=(--Data.train_shards "$exp_dir/shards/stage2" --Data.train_sources "[]")
    fi
    # shellcheck disable=SC2086
    train_stage stage2 "$stage2_config" --FineTune.checkpoint "$exp_dir/runs/stage1" \
        --in_sample_rate "$stage2_in_rate" "${shards[@]}" $stage2_args
}

export_model() {
    local run maker folder
    run=$(final_run)
    maker=$(final_train_stage)
    folder="$exp_dir/runs/$run/checkpoints"
    if ! has_run "$run" "$export_tag"; then
        # A finished run without the tag (best needs a validation: Trainer.valid_every 0 writes none).
        has_run "$run" && die "stage 5: the $run run has no '$export_tag' checkpoint ($folder has:" \
            "$(ls "$folder" | paste -sd ' ' -)); choose one with --export_tag"
        die "stage 5 needs the $run model ($folder/$export_tag), which stage $maker" \
            "makes; run it first (--stage $maker)"
    fi
    rm -rf "$exp_dir/model"
    run_cmd gan-enhance export "$exp_dir/runs/$run" "$exp_dir/model" --tag "$export_tag"
}

enhance_test_set() {
    require_input 6 "$exp_dir/model/config.json" 5 "the exported model"
    require_input 6 "$test_degraded" 1 "the degraded test set"
    # shellcheck disable=SC2086
    run_cmd gan-enhance enhance "$exp_dir/model" "$test_degraded" --output "$exp_dir/enhanced" $enhance_args
}

# The comparison's reference: identity (the unprocessed input) when listed, else the first baseline.
reference_system() {
    local name
    for name in $baselines; do
        if [ "$name" = identity ]; then echo identity; return; fi
    done
    for name in $baselines; do
        echo "$name"
        return
    done
}

evaluate_and_compare() {
    require_input 7 "$exp_dir/enhanced" 6 "the enhanced test set"
    local systems=() name reference
    for name in $baselines; do systems+=(--system "$name"); done
    # shellcheck disable=SC2086
    run_cmd gan-enhance evaluate --clean "$test_clean" --degraded "$test_degraded" \
        --enhanced "ours=$exp_dir/enhanced" "${systems[@]}" --out "$exp_dir/eval" $evaluate_args
    reference=$(reference_system)
    [ -n "$reference" ] || return 0
    # The reference first: every other table is compared with it, so each difference reads system - reference.
    local tables=("$exp_dir/eval/$reference.csv" "$exp_dir/eval/ours.csv")
    for name in $baselines; do
        [ "$name" = "$reference" ] || tables+=("$exp_dir/eval/$name.csv")
    done
    run_cmd gan-enhance compare "${tables[@]}" --out "$exp_dir/eval"
}

# What the run left, said once at the end: "finished" only when there is a model.
report_outputs() {
    if [ -f "$exp_dir/model/config.json" ]; then
        local outputs="model in $exp_dir/model"
        [ -d "$exp_dir/enhanced" ] && outputs+=", enhanced audio in $exp_dir/enhanced"
        [ -f "$exp_dir/eval/summary.md" ] && outputs+=", scores in $exp_dir/eval"
        log "finished: $outputs"
    else
        log "stages ${stage}-${stop_stage} done; no model yet (stage 5 exports it): continue with --stage $((stop_stage + 1))"
    fi
}

run_pipeline() {
    # Data paths first (a recipe's check_paths), then the WavLM: both before anything is written.
    if declare -F check_paths > /dev/null; then
        check_paths
    fi
    if [ "$stage" -le "$(final_train_stage)" ] && [ "$stop_stage" -ge 3 ]; then
        check_wavlm
    fi
    start_records
    write_resume "$stage"
    run_stage 1 "prepare data" prepare_data
    if [ "$use_shards" = true ]; then
        run_stage 2 "precompute training pairs into shards" precompute_shards
    fi
    run_stage 3 "train stage 1 ($stage1_config)" train_stage1
    if [ "$stage2_config" != none ]; then
        run_stage 4 "train stage 2 ($stage2_config, from stage 1)" train_stage2
    fi
    run_stage 5 "export the $(final_run) generator ($export_tag)" export_model
    run_stage 6 "enhance the test set" enhance_test_set
    run_stage 7 "evaluate and compare with baselines ($baselines)" evaluate_and_compare
    report_outputs
}
