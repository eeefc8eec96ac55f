# Shared machinery for recipe scripts (sourced, not run). ESPnet-style:
#  - a recipe and the shared pipeline declare their defaults, one per line as `name=value   # comment`,
#    between the markers `# <defaults>` and `# </defaults>`; `--help` prints them with their current
#    values, `--name value` overrides them, an unknown option is an error;
#  - `run_stage N "description" command...` runs a stage only inside [stage, stop_stage], logs it with
#    time stamps, and writes a sentinel so a finished stage is skipped on the next run (`--force true`
#    reruns it);
#  - every command a stage runs is appended to "$exp_dir/commands.sh", so the experiment folder records
#    how to reproduce (and resume) it.

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

die() {
    log "error: $*"
    exit 1
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

# parse_options "$@": apply --name value pairs to the variables declared in the defaults blocks of
# $RECIPE_FILE and $PIPELINE_FILE; --help lists them.
parse_options() {
    local files=("$RECIPE_FILE" "$PIPELINE_FILE") known name
    known=$(default_lines "${files[@]}" | cut -d= -f1)
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
                name=${name//-/_}
                if ! grep -qx "$name" <<< "$known"; then
                    echo "$RECIPE_FILE: unknown option --${name}; see --help" >&2
                    exit 2
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
}

# run_stage N DESCRIPTION COMMAND...: the uniform stage guard.
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
    log "stage ${number}: ${description}"
    {
        echo "# stage ${number}: ${description} ($(date '+%Y-%m-%dT%H:%M:%S'))"
        printf '%q ' "$@"
        echo
    } >> "$exp_dir/commands.sh"
    "$@" || die "stage ${number} (${description}) failed; fix the cause and rerun with --stage ${number}"
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
