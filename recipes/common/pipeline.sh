# The stages every recipe shares (sourced by recipes/<name>/run.sh after its own defaults block).
# A recipe defines `prepare_data` (stage 1) and the variables below that it needs to differ; everything
# here can be overridden on its command line as --name value.
#
#   1  prepare data            recipe-specific: check paths, write lists / synthetic data / a test set
#   2  precompute shards       optional (use_shards=true): degraded/clean pairs for stage 3 and stage 4
#   3  train stage 1           conf/stage1_16k.yml (16 kHz -> 16 kHz): regression warm-up, then GAN
#   4  train stage 2           conf/stage2_48k.yml (16 kHz -> 48 kHz), generator fine-tuned from stage 1
#   5  export                  the final stage's generator alone -> $exp_dir/model
#   6  enhance                 the test set's degraded files -> $exp_dir/enhanced
#   7  evaluate and compare    metrics vs the clean files, against baselines, with paired statistics
#
# Rerunning skips finished stages (sentinels in $exp_dir/.done); an interrupted training stage resumes
# from its latest checkpoint. $exp_dir/commands.sh records every command that ran.

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
baselines=${baselines:-identity spectral-gating}    # systems the model is compared with
# </defaults>

PIPELINE_FILE=${BASH_SOURCE[0]}
source "$(dirname "$PIPELINE_FILE")/stages.sh"

# Variables a recipe must set (in its defaults or prepare_data): train_data_args (the --Data.* overrides
# pointing at its training data), test_degraded and test_clean (the test set), task (degradation preset
# for shards and baselines).

final_run() {
    if [ "$stage2_config" = none ]; then echo stage1; else echo stage2; fi
}

# train_stage NAME CONFIG EXTRA...: one training run in $exp_dir/runs/NAME (resumed if it has a checkpoint).
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
    # Word splitting of the *_args strings is intended: they hold --Key value pairs.
    # shellcheck disable=SC2086
    "${launcher[@]}" --args.load "$config" --name "$name" --runs_dir "$exp_dir/runs" \
        $train_data_args $train_args "$@" "${resume[@]}"
}

precompute_shards() {
    gan-enhance preprocess --clean $train_clean --task "$task" --output "$exp_dir/shards/stage1" \
        --items "$shard_items" --in-sample-rate 16000 --out-sample-rate 16000
    if [ "$stage2_config" != none ]; then
        gan-enhance preprocess --clean $train_clean --task "$task" --output "$exp_dir/shards/stage2" \
            --items "$shard_items" --in-sample-rate "$stage2_in_rate" --out-sample-rate 48000
    fi
}

train_stage1() {
    local shards=()
    [ "$use_shards" = true ] && shards=(--Data.train_shards "$exp_dir/shards/stage1" --Data.train_sources "[]")
    # shellcheck disable=SC2086
    train_stage stage1 "$stage1_config" "${shards[@]}" $stage1_args
}

train_stage2() {
    local shards=()
    [ "$use_shards" = true ] && shards=(--Data.train_shards "$exp_dir/shards/stage2" --Data.train_sources "[]")
    # shellcheck disable=SC2086
    train_stage stage2 "$stage2_config" --FineTune.checkpoint "$exp_dir/runs/stage1" \
        --in_sample_rate "$stage2_in_rate" "${shards[@]}" $stage2_args
}

export_model() {
    rm -rf "$exp_dir/model"
    gan-enhance export "$exp_dir/runs/$(final_run)" "$exp_dir/model" --tag "$export_tag"
}

enhance_test_set() {
    # shellcheck disable=SC2086
    gan-enhance enhance "$exp_dir/model" "$test_degraded" --output "$exp_dir/enhanced" $enhance_args
}

evaluate_and_compare() {
    local systems=() name
    for name in $baselines; do systems+=(--system "$name"); done
    gan-enhance evaluate --clean "$test_clean" --degraded "$test_degraded" \
        --enhanced "ours=$exp_dir/enhanced" "${systems[@]}" --out "$exp_dir/eval"
    # ours first: every baseline is compared with it (paired tests, Holm-corrected)
    local tables=("$exp_dir/eval/ours.csv")
    for name in $baselines; do tables+=("$exp_dir/eval/$name.csv"); done
    gan-enhance compare "${tables[@]}" --out "$exp_dir/eval"
}

run_pipeline() {
    mkdir -p "$exp_dir"
    # How to continue this experiment after an interruption: finished stages are skipped, training resumes.
    printf '#!/usr/bin/env bash\n# Continue this experiment (finished stages are skipped).\ncd %q\nexec bash %q %s\n' \
        "$PWD" "$RECIPE_FILE" "$(printf '%q ' "${RECIPE_ARGS[@]}")" > "$exp_dir/resume.sh"
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
    log "finished: model in $exp_dir/model, enhanced audio in $exp_dir/enhanced, scores in $exp_dir/eval"
}
