# Shared machinery for recipe scripts (sourced, not run). ESPnet-style:
#  - a recipe and the shared pipeline declare their defaults, one per line as `name=value   # comment`,
#    between the markers `# <defaults>` and `# </defaults>`; `--help` prints them with their current
#    values, `--name value` overrides them, an unknown option is an error that names the closest one;
#    relative paths in the options a recipe lists (path_options, file_options) are relative to where
#    the recipe was started;
#  - `run_stage N "description" command...` runs a stage only inside [stage, stop_stage], logs it with
#    time stamps, and writes a sentinel so a finished stage is skipped on the next run (`--force true`
#    reruns it). Ctrl-C (or SIGTERM) ends the recipe with "interrupted; resume with ...";
#  - stages run their programs through `run_cmd`, which appends each command line to
#    "$exp_dir/commands.sh" before running it, so the experiment folder records what ran;
#  - "$exp_dir/resume.sh" always continues from the stage that is running (or was interrupted or failed)
#    to the stop stage asked for, with the same options.

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

# die MESSAGE: log the error and stop (inside a stage: stop the stage; run_stage adds nothing to it).
die() {
    log "error: $*"
    exit "${DIE_STATUS:-1}"
}

# The directory the recipe was started from. A recipe records it (CALLER_DIR=$PWD) before it changes to
# the repository root, so that the relative paths a user gives still name what is where the user is.
CALLER_DIR=${CALLER_DIR:-$PWD}
GIVEN_OPTIONS=" "  # the options set on the command line (parse_options)

# resolve_paths: make relative paths absolute against $CALLER_DIR in the options named by $path_options
# (space-separated paths, from the command line, the environment or a default) and in those named by
# $file_options when given on the command line and present there (otherwise, e.g. a config under the
# repository, a hub id or "none", they are left as given). Started from the repository root nothing
# changes; started from a folder whose path has a space (paths are split on spaces) neither, with a note.
resolve_paths() {
    local name word words resolved
    [ "$CALLER_DIR" = "$PWD" ] && return 0
    if [[ $CALLER_DIR == *[[:space:]]* ]]; then
        log "started from '$CALLER_DIR', whose path has a space: relative paths are taken from $PWD"
        return 0
    fi
    for name in ${path_options:-} ${file_options:-}; do
        read -ra words <<< "${!name}"
        resolved=()
        for word in "${words[@]}"; do
            if [[ $word != /* && " ${path_options:-} " == *" $name "* ]] \
                || [[ $word != /* && $word != none && $GIVEN_OPTIONS == *" $name "* && -e $CALLER_DIR/$word ]]
            then
                word=$CALLER_DIR/$word
            fi
            resolved+=("$word")
        done
        printf -v "$name" '%s' "${resolved[*]}"
    done
}

# default_lines FILE...: the `name=value   # comment` lines of the files' defaults blocks.
default_lines() {
    local file
    for file in "$@"; do
        sed -n '/^# <defaults>/,/^# <\/defaults>/p' "$file" | grep -E '^[a-zA-Z_][a-zA-Z0-9_]*='
    done
}

# print_options FILE...: every option with its current value and its comment, for --help.
print_options() {
    local line name comment
    # A recipe's own default comes first and wins over the pipeline's line for the same name.
    default_lines "$@" | awk -F= '!seen[$1]++' | while IFS= read -r line; do
        name=${line%%=*}
        comment=""
        [[ $line == *"# "* ]] && comment=${line#*# }
        printf '  --%-16s %-34s %s\n' "$name" "'${!name}'" "$comment"
    done
}

# closest_name NAME CANDIDATES: the candidate (one a line) nearest to NAME by edit distance, if it is
# near enough to be a likely typo; nothing otherwise.
closest_name() {
    awk -v target="$1" '
        function distance(a, b,    i, j, la, lb, cost, d, best) {
            la = length(a); lb = length(b)
            for (i = 0; i <= la; i++) d[i, 0] = i
            for (j = 0; j <= lb; j++) d[0, j] = j
            for (i = 1; i <= la; i++)
                for (j = 1; j <= lb; j++) {
                    cost = substr(a, i, 1) == substr(b, j, 1) ? 0 : 1
                    best = d[i - 1, j] + 1
                    if (d[i, j - 1] + 1 < best) best = d[i, j - 1] + 1
                    if (d[i - 1, j - 1] + cost < best) best = d[i - 1, j - 1] + cost
                    d[i, j] = best
                }
            return d[la, lb]
        }
        NF {
            score = distance(target, $0)
            # a prefix either way ("stop" for "stop_stage", "wavlm_model" for "wavlm") counts as close
            if (index($0, target) == 1 || index(target, $0) == 1) score = 1
            if (found == "" || score < lowest) { found = $0; lowest = score }
        }
        END { if (found != "" && lowest <= int(length(target) / 3) + 1) print found }
    ' <<< "$2"
}

# parse_options "$@": apply --name value pairs to the variables declared in the defaults blocks of
# $RECIPE_FILE and $PIPELINE_FILE; --help lists them.
parse_options() {
    local files=("$RECIPE_FILE" "$PIPELINE_FILE") known name close
    known=$(default_lines "${files[@]}" | cut -d= -f1 | awk '!seen[$0]++')
    while [ $# -gt 0 ]; do
        case "$1" in
            -h | --help)
                echo "usage: $RECIPE_FILE [--option value ...]"
                echo
                sed -n '2,/^set /p' "$RECIPE_FILE" | grep '^#' | sed 's/^# \{0,1\}//'
                echo
                echo "options (current value, meaning):"
                print_options "${files[@]}"
                exit 0
                ;;
            --*)
                name=${1#--}
                name=${name%%=*}
                name=${name//-/_}
                if ! grep -qx "$name" <<< "$known"; then
                    close=$(closest_name "$name" "$known")
                    echo "$RECIPE_FILE: unknown option --${name}${close:+; did you mean --$close?}; see --help" >&2
                    exit 2
                fi
                GIVEN_OPTIONS+="$name "
                if [[ $1 == *=* ]]; then  # --name=value
                    printf -v "$name" '%s' "${1#*=}"
                    shift
                    continue
                fi
                [ $# -ge 2 ] || { echo "$RECIPE_FILE: option --${name} needs a value" >&2; exit 2; }
                printf -v "$name" '%s' "$2"
                shift 2
                ;;
            *)
                echo "$RECIPE_FILE: unexpected argument '$1'; options are --name value (see --help)" >&2
                exit 2
                ;;
        esac
    done
    resolve_paths
}

# start_records: the headers of "$exp_dir/commands.sh" (created once, appended to by every run).
start_records() {
    mkdir -p "$exp_dir"
    if [ ! -f "$exp_dir/commands.sh" ]; then
        {
            echo "#!/usr/bin/env bash"
            echo "# Every command the recipe ran for this experiment, in order, under a header per stage."
            printf 'cd %q\n' "$PWD"
        } > "$exp_dir/commands.sh"
    fi
    printf '\n# %s: bash %q %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "$RECIPE_FILE" \
        "$(printf '%q ' "${RECIPE_ARGS[@]}")" >> "$exp_dir/commands.sh"
}

# run_cmd COMMAND...: record the command line in commands.sh, then run it.
run_cmd() {
    local line
    line=$(printf '%q ' "$@")
    echo "${line% }" >> "$exp_dir/commands.sh"
    "$@"
}

# write_resume FIRST_STAGE: "$exp_dir/resume.sh" reruns the recipe with the options it was given, from
# FIRST_STAGE to the stop stage asked for (finished stages are skipped; training resumes).
write_resume() {
    local first=$1 kept=() arg
    set -- "${RECIPE_ARGS[@]}"
    while [ $# -gt 0 ]; do
        case "$1" in
            --stage | --stop_stage | --stop-stage) shift 2 ;;
            --stage=* | --stop_stage=* | --stop-stage=*) shift ;;
            *) kept+=("$1"); shift ;;
        esac
    done
    {
        echo "#!/usr/bin/env bash"
        echo "# Continue this experiment at stage ${first} (finished stages are skipped, training resumes)."
        printf 'cd %q\n' "$CALLER_DIR"
        printf 'exec bash %q' "$RECIPE_FILE"
        for arg in "${kept[@]}"; do printf ' %q' "$arg"; done
        printf ' --stage %s --stop_stage %s "$@"\n' "$first" "$stop_stage"
    } > "$exp_dir/resume.sh"
    chmod +x "$exp_dir/resume.sh"
}

# run_stage N DESCRIPTION COMMAND...: the uniform stage guard. The command runs in a subshell with
# `set -e` in force (a failing step stops the stage, which a function called after `||` would not do).
run_stage() {
    local number=$1 description=$2
    shift 2
    if [ "$number" -lt "$stage" ] || [ "$number" -gt "$stop_stage" ]; then
        return 0
    fi
    local sentinel="$exp_dir/.done/stage${number}"
    if [ -f "$sentinel" ] && [ "${force:-false}" != true ]; then
        log "stage ${number}: ${description}: already done (${sentinel}); skipping"
        return 0
    fi
    mkdir -p "$exp_dir/.done"
    rm -f "$sentinel"  # a rerun that stops half-way must not leave the old run's sentinel behind
    write_resume "$number"
    log "stage ${number}: ${description}"
    echo "# stage ${number}: ${description} ($(date '+%Y-%m-%dT%H:%M:%S'))" >> "$exp_dir/commands.sh"
    local status=0
    STAGE_SIGNAL=""
    trap 'STAGE_SIGNAL=INT' INT
    trap 'STAGE_SIGNAL=TERM' TERM
    set +e
    (
        set -e
        trap - INT TERM
        DIE_STATUS=3  # the stage stopped itself and said why
        "$@"
    )
    status=$?
    set -e
    trap - INT TERM
    if [ -n "$STAGE_SIGNAL" ] || [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; then
        log "stage ${number} (${description}) interrupted; resume with: bash $exp_dir/resume.sh"
        exit "$([ "$status" -ne 0 ] && echo "$status" || echo 130)"
    fi
    if [ "$status" -eq 3 ]; then
        exit 1
    fi
    if [ "$status" -ne 0 ]; then
        die "stage ${number} (${description}) failed; fix the cause and rerun with --stage ${number} (or bash $exp_dir/resume.sh)"
    fi
    touch "$sentinel"
    log "stage ${number}: done"
}

# require_dir NAME PATH: fail early, naming the variable, when a data folder is missing.
require_dir() {
    local name=$1 path=$2
    if [ -z "$path" ]; then
        die "--${name} is not set; point it at the folder (see --help and the recipe README)"
    fi
    if [ ! -d "$path" ]; then
        die "--${name} ${path}: no such folder; download the data or fix the path (see the recipe README)"
    fi
}

# require_input NEEDED_BY PATH MAKER WHAT: stage NEEDED_BY cannot run before PATH exists; name the stage
# (MAKER) that makes it.
require_input() {
    local needed_by=$1 path=$2 maker=$3 what=$4
    if [ ! -e "$path" ]; then
        die "stage ${needed_by} needs ${what} (${path}), which stage ${maker} makes; run it first (--stage ${maker})"
    fi
}
