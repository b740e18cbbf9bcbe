# bash completion for facesearch                                    -*- shell-script -*-
#
# Installed by `cmake --install` into share/bash-completion/completions/facesearch (loaded on
# demand by the bash-completion package); or load it by hand:  source data/completion/facesearch.bash
#
# Subcommands and their options are read from facesearch's own --help (once per shell and
# subcommand), so the completion follows the binary it completes; option values that are fixed
# choices, files or directories are completed below.

# Prints the option names (-x and --long) listed under "Options:" of `facesearch [SUB...] --help`.
_facesearch_options() {
    "$@" --help 2>/dev/null | awk '
        /^[A-Za-z].*:$/ { in_opts = ($0 == "Options:"); next }
        in_opts && /^ +-/ {
            n = split($1, names, ",")
            for (i = 1; i <= n; i++) if (names[i] ~ /^-/) print names[i]
        }'
}

# Prints the subcommand names listed under "Subcommands:" of `facesearch --help`.
_facesearch_subcommands() {
    "$1" --help 2>/dev/null | awk '
        /^[A-Za-z].*:$/ { in_subs = ($0 == "Subcommands:"); next }
        in_subs && /^  [a-z]/ { print $1 }'
}

_facesearch() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else  # without the bash-completion package
        cur="${COMP_WORDS[COMP_CWORD]}"
        prev="${COMP_WORDS[COMP_CWORD - 1]}"
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi
    local prog="${words[0]:-facesearch}"
    command -v "$prog" >/dev/null 2>&1 || prog=facesearch

    # The subcommand: the first word that is not an option or an option's value; `eval` has
    # subcommands of its own (lfw, calibrate).
    local i sub="" subsub=""
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            --corpus | --models | --case | --purpose) ((i++)) ;;
            -*) ;;
            *)
                if [[ -z "$sub" ]]; then
                    sub="${words[i]}"
                    [[ "$sub" == eval ]] || break
                else
                    subsub="${words[i]}"
                    break
                fi
                ;;
        esac
    done

    # Values of options.
    case "$prev" in
        --corpus | --models | --crop | --images)
            COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --html | --from-file | --output | -o | --pairs | --roc | --image | --photo)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --detector)
            COMPREPLY=($(compgen -W "hog cnn yunet" -- "$cur")); return ;;
        --model)
            COMPREPLY=($(compgen -W "dlib sface" -- "$cur")); return ;;
        --index)
            COMPREPLY=($(compgen -W "auto exact int8 ivf ivfpq hnsw" -- "$cur")); return ;;
        -f | --format)
            case "$sub" in
                query | subject) COMPREPLY=($(compgen -W "table json jsonl csv tsv" -- "$cur")) ;;
                cluster) COMPREPLY=($(compgen -W "table json jsonl" -- "$cur")) ;;
                audit) COMPREPLY=($(compgen -W "table jsonl" -- "$cur")) ;;
            esac
            return ;;
        --case | --purpose | -t | --threshold | -k | --top-k | --max-fmr | --face | --face-a | --face-b | \
            --upsample | --max-pixels | -j | --jobs | --min-size | --neighbors | --reason | --face-id | \
            --older-than | --since | --until | --user | --like | --subject | --nlist | --nprobe | --pq-m | --pq-bits | \
            --m | --hnsw-m | --ef-construction | --ef-search | --rerank | --recall-queries)
            return ;;  # a value the user has to type
    esac

    # Cache of option lists, per subcommand, for this shell.
    declare -gA _facesearch_opts_cache
    local key="${sub:-_} $subsub"
    if [[ -z "${_facesearch_opts_cache[$key]+set}" ]]; then
        _facesearch_opts_cache[$key]="$(_facesearch_options "$prog" $sub $subsub | tr '\n' ' ')"
    fi

    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${_facesearch_opts_cache[$key]}" -- "$cur"))
        return
    fi
    if [[ -z "$sub" ]]; then
        if [[ -z "${_facesearch_opts_cache[_subs]+set}" ]]; then
            _facesearch_opts_cache[_subs]="$(_facesearch_subcommands "$prog" | tr '\n' ' ')"
        fi
        COMPREPLY=($(compgen -W "${_facesearch_opts_cache[_subs]}" -- "$cur"))
        return
    fi
    case "$sub" in
        audit) COMPREPLY=($(compgen -W "list verify" -- "$cur")) ;;
        optout) COMPREPLY=($(compgen -W "add list remove" -- "$cur")) ;;
        subject) COMPREPLY=($(compgen -W "add list show exclude rename remove" -- "$cur")) ;;
        eval) [[ -n "$subsub" ]] || COMPREPLY=($(compgen -W "lfw calibrate" -- "$cur")) ;;
        config) COMPREPLY=($(compgen -W "list set" -- "$cur")) ;;
        info | export | reindex | compact) ;;
        *) COMPREPLY=($(compgen -f -- "$cur")) ;;  # photos, folders
    esac
} &&
    complete -o filenames -o bashdefault -F _facesearch facesearch
