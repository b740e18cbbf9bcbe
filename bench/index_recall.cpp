// index_recall — recall@10 of a corpus's vector index as it stands (issue #16).
//
//   index_recall CORPUS_DIR [QUERIES]
//
// Opens the corpus's index as a query does (never trained, never saved: faces added since the file
// was written are searched as a delta in memory) and measures recall@10 against the exact scan
// with VectorIndex::MeasureRecall: QUERIES (default 1000) live rows of the main segment as probes,
// each probe's own face left out of both answers. Unlike `reindex`, which measures a fresh build,
// this measures the index after appends (delta chunks, scanned exactly beside the structure) and
// erasures (rows scrubbed in place, IVF entries tombstoned, the training kept). Read-only; prints one
// line. Used by scripts/bench/bench-scale.sh; not a product command.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "index/corpus_index.h"
#include "store/store.h"

namespace fs = facesearch;

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [QUERIES]\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const int queries = argc == 3 ? std::atoi(argv[2]) : 1000;
  auto store = fs::Store::OpenReadOnly(dir / "corpus.sqlite");
  if (!store) {
    std::fprintf(stderr, "index_recall: %s\n", store.error().message.c_str());
    return 2;
  }
  auto opened = fs::OpenCorpusIndex(**store, dir / "index", /*persist=*/false, fs::IndexUse::kSearch);
  if (!opened) {
    std::fprintf(stderr, "index_recall: %s\n", opened.error().message.c_str());
    return 2;
  }
  const fs::VectorIndex& index = *opened->index;
  auto recall = index.MeasureRecall(queries);
  if (!recall) {
    std::fprintf(stderr, "index_recall: %s\n", recall.error().message.c_str());
    return 2;
  }
  std::printf("recall@10 %.4f over %d probes; index %s, %lld rows in the main segment, %lld in the delta, "
              "%lld rows in all (scrubbed rows included until a compaction)\n",
              recall->recall_at_10, recall->queries, fs::IndexKindName(index.spec().kind),
              static_cast<long long>(index.main_rows()), static_cast<long long>(index.delta_rows()),
              static_cast<long long>(index.ntotal()));
  return 0;
}
