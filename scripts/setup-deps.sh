#!/usr/bin/env bash
# scripts/setup-deps.sh — install the Debian (bookworm) packages facesearch needs to build and test.
#
#   scripts/setup-deps.sh
#
# Idempotent: if every package is already installed (per dpkg-query) it does nothing and says so.
# Otherwise it runs "apt-get update" once and "apt-get install -y --no-install-recommends" for the
# missing packages — directly when run as root, else through sudo, else it fails and lists them.
# It then checks that "python3 -m pip" and "python3 -m venv" work (the fetch and parity scripts use them).
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/common.sh"

# python3-pip: "python3 -m pip download" in the fetch scripts. python3-venv: ensurepip for
# "python3 -m venv" (scripts/check/parity.sh). curl + bzip2: the dlib.net fallback of fetch-models.sh.
# jq: the shell-pipeline tests. chromium: renders the HTML report in its test. help2man: the man page;
# man-db: its test renders it.
# libcurl4-openssl-dev: URL fetching in `facesearch index --urls/--manifest`. libssl-dev: SHA-256
# through libcrypto (SHA-NI where the CPU has it). nlohmann-json3-dev: all JSON in and out (manifests,
# embed files, every JSON output, tests). libxxhash-dev: XXH3 checksums of the index file's blocks (opening maps the
# file instead of hashing all of it). libopencv-contrib-dev: OpenCV's img_hash (the near-duplicate
# hash); libexif-dev: EXIF capture time, camera and GPS at ingest.
readonly PACKAGES=(
  build-essential cmake pkg-config
  libopencv-dev libdlib-dev libfaiss-dev libsqlite3-dev libcli11-dev libspdlog-dev catch2
  libopenblas-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libxxhash-dev libopencv-contrib-dev libexif-dev
  python3 python3-pip python3-venv
  sqlite3 curl bzip2 ca-certificates
  jq chromium help2man man-db
  # facesearch serve (issue #18): cpp-httplib (HTTP/1.1 server and client, TLS via OpenSSL),
  # nlohmann-json (request bodies), wrk (the server benchmark's load generator), openssl (the
  # HTTPS test makes a CA and a server certificate with its command line)
  libcpp-httplib-dev nlohmann-json3-dev wrk openssl
)

case "${1:-}" in
  "") ;;
  -h | --help)
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

command -v dpkg-query >/dev/null || die "dpkg-query not found: this script supports Debian/Ubuntu only"

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  log "all ${#PACKAGES[@]} required Debian packages are already installed; nothing to do"
else
  log "missing Debian packages: ${missing[*]}"
  if ((EUID == 0)); then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
    log "not root: using sudo"
  else
    die "not root and sudo is not available; as root, run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "running apt-get update"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  log "installing: ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
  log "installed ${#missing[@]} packages"
fi

# python3 on PATH may not be Debian's (pyenv, conda): check the features the scripts rely on.
python3 -m pip --version >/dev/null 2>&1 ||
  die "'python3 -m pip' does not work with $(command -v python3); the fetch scripts need it"
python3 -c 'import ensurepip, venv' 2>/dev/null ||
  die "'python3 -m venv' cannot bootstrap pip with $(command -v python3) (Debian: python3-venv)"
log "python3 ($(command -v python3)) has pip and venv"
