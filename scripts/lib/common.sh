# shellcheck shell=bash
# scripts/lib/common.sh — helpers shared by the facesearch scripts (sourced, never run).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Provides: log/warn/die (stderr, prefixed with the calling script's name), FS_REPO_ROOT,
# fs_mktemp_dir (temp dirs removed on exit), fs_on_exit (extra cleanup), fs_sha256,
# fs_default_models_dir / fs_default_test_images_dir (the same defaults the C++ code uses).

if [[ -n "${FS_COMMON_SH_LOADED:-}" ]]; then
  return 0
fi
FS_COMMON_SH_LOADED=1

FS_SCRIPT="${FS_SCRIPT:-$(basename -- "$0")}"
FS_REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
export FS_REPO_ROOT

log() { printf '%s: %s\n' "$FS_SCRIPT" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$FS_SCRIPT" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$FS_SCRIPT" "$*" >&2
  exit "${FS_DIE_RC:-1}"
}

# Temp dirs and files to remove when the script exits (normally, on error or on a signal).
FS_CLEANUP_PATHS=()
FS_CLEANUP_CMDS=()
fs__cleanup() {
  local rc=$? p c
  for c in "${FS_CLEANUP_CMDS[@]+"${FS_CLEANUP_CMDS[@]}"}"; do
    eval "$c" || true
  done
  for p in "${FS_CLEANUP_PATHS[@]+"${FS_CLEANUP_PATHS[@]}"}"; do
    [[ -n "$p" && -e "$p" ]] && rm -rf -- "$p"
  done
  return "$rc"
}
trap fs__cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fs_register_cleanup PATH — remove PATH when the script exits.
fs_register_cleanup() { FS_CLEANUP_PATHS+=("$1"); }
# fs_on_exit 'COMMAND' — run COMMAND (a string, eval'd) when the script exits.
fs_on_exit() { FS_CLEANUP_CMDS+=("$1"); }

# fs_mktemp_dir VAR [PREFIX] — create a private temp dir, store its path in VAR, remove it on exit.
fs_mktemp_dir() {
  local __var="$1" __prefix="${2:-facesearch}" __dir
  __dir="$(mktemp -d "${TMPDIR:-/tmp}/${__prefix}.XXXXXXXX")" || die "cannot create a temporary directory"
  fs_register_cleanup "$__dir"
  printf -v "$__var" '%s' "$__dir"
}

# fs_sha256 FILE — print FILE's SHA-256 (hex).
fs_sha256() {
  local out
  out="$(sha256sum -- "$1")" || die "cannot hash $1"
  printf '%s\n' "${out%% *}"
}

fs_cache_home() { printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}"; }
fs_default_models_dir() { printf '%s\n' "${FACESEARCH_MODELS:-$(fs_cache_home)/facesearch/models}"; }
fs_default_test_images_dir() {
  printf '%s\n' "${FACESEARCH_TEST_IMAGES:-$(fs_cache_home)/facesearch/test-images}"
}
