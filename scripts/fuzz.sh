#!/usr/bin/env bash
# scripts/fuzz.sh — build the libFuzzer targets (clang, ASan+UBSan) and fuzz them.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default 300 seconds per target; targets:
#     decode    untrusted image bytes → header checks → decode → detect → landmarks → embed
#     parsers   manifests (JSONL, CSV), URL lists, robots.txt bodies, X-Robots-Tag headers
#     api       facesearch serve's request parsing: URL parameters, multipart parts, JSON bodies, tokens
#     exif      EXIF of image files (JPEG APP1, PNG eXIf, WebP EXIF) through libexif
#   (default: all three, one after the other)
#
# Seeds: the face_recognition test photos (scripts/fetch-test-images.sh) for decode; a few valid
# manifests, URL lists and robots.txt files written below for parsers. Each target's corpus of
# interesting inputs grows in build-fuzz/corpus-TARGET; a crash is written to build-fuzz/crash-*
# and makes this script exit 1.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
seconds="${1:-300}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(decode parsers api exif)
# libstdc++ 12's std::expected needs clang >= 16 (Debian bookworm's default clang is 14).
cxx=""
for c in clang++-19 clang++-18 clang++-17 clang++-16; do command -v "$c" >/dev/null && { cxx="$c"; break; }; done
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang >= 16 is needed: apt-get install clang-16 libclang-rt-16-dev libomp-16-dev" >&2; exit 2; }
echo "fuzz.sh: building the fuzz targets with $cxx, ASan and UBSan (build-fuzz/)" >&2
CXX="$cxx" cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACESEARCH_FUZZ=ON \
  -DFACESEARCH_SANITIZE=ON -DFACESEARCH_BUILD_TESTS=OFF >/dev/null

# The parser seeds: byte 0 picks the parser (fuzz/fuzz_parsers.cpp): 0 JSONL, 1 CSV, 2 URL list,
# 3 robots.txt, 4 X-Robots-Tag values.
parser_seeds() {
  local d=build-fuzz/seeds-parsers
  mkdir -p "$d"
  printf '\0{"path": "a.jpg", "source": "archive", "licence": "CC-BY"}\n{"url": "https://example.org/x.jpg", "page_url": "https://example.org/", "notes": null}\n' >"$d/jsonl"
  printf '\1path,url,page_url,source,captured_at,licence,notes\na.jpg,,,"a ""quoted"" source",2024-01-01,,"multi\nline"\n,https://example.org/b.png,,,,,\n' >"$d/csv"
  printf '\2# a URL list\nhttps://example.org/a.jpg\nhttp://[::1]:8080/b.png?x=1\nftp://example.org/c.jpg\nfile:///etc/passwd\n' >"$d/urls"
  printf '\3User-agent: *\nDisallow: /private/\nAllow: /private/ok*.jpg$\n\nUser-agent: facesearch\nDisallow: /*.png$\n/private/ok1.jpg' >"$d/robots"
  printf '\4noimageindex\nfacesearch: noindex, nofollow\nunavailable_after: 2030-01-01\nnone' >"$d/robots-tag"
  echo "$d"
}

# The API seeds: byte 0 picks the parser (fuzz/fuzz_api.cpp): 0 raw-body query, 1 multipart
# query, 2 compare and forget, 3 the Authorization header.
api_seeds() {
  local d=build-fuzz/seeds-api
  mkdir -p "$d"
  printf '\0image/jpeg\ntop_k=5&threshold=0.5&format=csv&fields=image,distance&name=p.jpg\nBearer fs_00\n\xff\xd8\xff\xe0' >"$d/raw"
  printf '\1multipart/form-data; boundary=x\nall_faces=true&case=K-1&purpose=t\n\nimage\001a.jpg\001\xff\xd8\000image\001b.png\001\x89PNG' >"$d/multipart"
  printf '\2application/json\nmax_fmr=1e-4&face_a=0\n\n{"face_ids":[1,2],"images":["a.jpg"],"older_than":"30d"}' >"$d/forget"
  printf '\3text/plain\ncase=x\nBearer fs_0123456789abcdef\n' >"$d/token"
  echo "$d"
}

status=0
for t in "${targets[@]}"; do
  case "$t" in
    decode)
      seeds="${FACESEARCH_TEST_IMAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/facesearch/test-images}"
      [[ -d "$seeds" ]] || scripts/fetch-test-images.sh
      max_len=65536 ;;
    parsers)
      seeds="$(parser_seeds)"
      max_len=8192 ;;
    api)
      seeds="$(api_seeds)"
      max_len=8192 ;;
    exif)  # the test photos: some carry EXIF; the target also wraps each input as an EXIF segment
      seeds="${FACESEARCH_TEST_IMAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/facesearch/test-images}"
      [[ -d "$seeds" ]] || scripts/fetch-test-images.sh
      max_len=65536 ;;
    *) echo "fuzz.sh: unknown target '$t' (decode, parsers, api, exif)" >&2; exit 2 ;;
  esac
  cmake --build build-fuzz --target "fuzz_$t" -j"$(nproc)"
  mkdir -p "build-fuzz/corpus-$t"
  echo "fuzz.sh: fuzzing $t for ${seconds}s (seeds: $seeds)" >&2
  # Leaks inside OpenCV/libjpeg error paths are not ours to fix; ASan still reports memory errors.
  ASAN_OPTIONS=detect_leaks=0 "build-fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" \
    -rss_limit_mb=4096 -artifact_prefix=build-fuzz/ "build-fuzz/corpus-$t" "$seeds" || status=1
done
exit "$status"
