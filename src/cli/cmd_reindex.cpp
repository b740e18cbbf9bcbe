// `facesearch reindex [--index KIND] [parameters]` and `facesearch compact`
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"

namespace facesearch::cli {

namespace {
struct ReindexArgs {
  ReindexOptions options;
  bool json = false;
};

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
}  // namespace

void AddReindexCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ReindexArgs>();
  CLI::App* cmd = app.add_subcommand(
      "reindex", "Choose the corpus's search index (exact, int8, IVF, IVF-PQ, HNSW) and rebuild it");
  cmd->footer(
      "Every kind keeps the exact float vectors: compact and approximate kinds only choose\n"
      "candidates, which are re-ranked with exact distances, so every distance shown is exact and\n"
      "only a near face may be missed. The kind and its parameters are recorded in the corpus and\n"
      "kept by every later index, forget, opt-out and verify --repair. After the build, recall@10\n"
      "against exact search is measured with --recall-queries corpus faces as probes (each probe's\n"
      "own face left out) and shown here and by `facesearch info`.\n"
      "auto: exact below 200,000 faces, int8 below 2,000,000, ivfpq from there (docs/benchmarks.md).\n"
      "Parameters left out take the default for the corpus size at each build: ivf/ivfpq nlist 1024\n"
      "(2048 from 4M faces, fewer when too few faces to train), nprobe 64; ivfpq pq-m 32, pq-bits 8;\n"
      "hnsw m 32, ef-construction 40, ef-search 128; rerank 100. Needs no model files.\n"
      "Exit status: 0 rebuilt, 2 an error.\n\n"
      "Examples:\n"
      "  facesearch reindex                          # auto: by corpus size\n"
      "  facesearch reindex --index ivfpq --nprobe 32\n"
      "  facesearch reindex --index hnsw --ef-search 256 --json\n"
      "  facesearch reindex --index exact            # back to the exact scan");
  cmd->add_option("--index", args->options.kind, "auto, exact, int8, ivf, ivfpq or hnsw")
      ->check(CLI::IsMember({"auto", "exact", "int8", "ivf", "ivfpq", "hnsw"}))
      ->capture_default_str();
  auto count = CLI::Range(0, 1'000'000);
  cmd->add_option("--nlist", args->options.nlist, "ivf, ivfpq: inverted lists (k-means centroids)")->check(count);
  cmd->add_option("--nprobe", args->options.nprobe, "ivf, ivfpq: lists searched per query")->check(count);
  cmd->add_option("--pq-m", args->options.pq_m, "ivfpq: sub-quantizers (divides 128)")->check(count);
  cmd->add_option("--pq-bits", args->options.pq_bits, "ivfpq: bits per sub-quantizer code (1-8)")
      ->check(CLI::Range(0, 8));
  cmd->add_option("--m,--hnsw-m", args->options.hnsw_m, "hnsw: graph degree")->check(count);
  cmd->add_option("--ef-construction", args->options.ef_construction, "hnsw: build-time beam")->check(count);
  cmd->add_option("--ef-search", args->options.ef_search, "hnsw: search-time beam")->check(count);
  cmd->add_option("--rerank", args->options.rerank,
                  "int8, ivf, ivfpq, hnsw: candidates re-ranked with exact distances")->check(count);
  cmd->add_option("--recall-queries", args->options.recall_queries,
                  "Corpus faces used as probes to measure recall@10 (0: skip)")
      ->check(count)->capture_default_str();
  cmd->add_flag("--json", args->json, "Print the result as one JSON object");
  cmd->callback([&ctx, args] {
    auto r = ReindexCorpus(ctx.Config(), args->options);
    if (!r) return ctx.Report(r.error());
    if (args->json) {
      std::cout << JsonText({{"kind", r->kind},
                             {"setting", r->setting},
                             {"params", r->params},
                             {"faces", r->faces},
                             {"recall_at_10", r->recall_queries > 0 ? Json(RoundDecimals(r->recall_at_10, 4)) : Json()},
                             {"recall_queries", r->recall_queries},
                             {"build_seconds", RoundDecimals(r->build_seconds, 3)},
                             {"memory_bytes", r->resident_bytes + r->mapped_bytes},
                             {"resident_bytes", r->resident_bytes},
                             {"mapped_bytes", r->mapped_bytes},
                             {"generation", r->generation}})
                << "\n";
    } else {
      std::cout << "index:      " << r->kind << (r->params.empty() ? "" : " (" + r->params + ")") << "\n"
                << "faces:      " << r->faces << "\n"
                << "recall@10:  " << (r->recall_queries > 0 ? Fixed(r->recall_at_10, 4) : "not measured")
                << " against exact search ("
                << r->recall_queries << " corpus faces as probes, own face excluded)\n"
                << "build:      " << Fixed(r->build_seconds, 2) << " s\n"
                << "memory:     " << r->resident_bytes << " bytes resident, " << r->mapped_bytes
                << " bytes mapped from the index file\n";
    }
    ctx.exit_code = kExitMatch;
  });
}

void AddCompactCommand(CLI::App& app, Context& ctx) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("compact", "Fold the faces indexed since the last compaction into the main index");
  cmd->footer(
      "`facesearch index` appends new faces to the index file as a delta, searched exactly next to\n"
      "the main segment, so that adding 5 photos to a million faces costs what 5 photos cost. Once\n"
      "the delta passes 10% of the main segment, `index` compacts by itself; this command does it\n"
      "now: the delta and the rows that `forget` scrubbed in place are folded into a new main\n"
      "segment, whose int8 codes or IVF lists are rebuilt (the IVF centroids and PQ codebooks are\n"
      "kept from 100,000 faces up, trained anew below). Progress goes to stderr; an interrupted\n"
      "compaction leaves the index as it was. Needs no model files. Exit status: 0 done, 2 an error.\n\n"
      "Examples:\n"
      "  facesearch compact\n"
      "  facesearch compact --json | jq .bytes_after");
  cmd->add_flag("--json", *json, "Print the result as one JSON object");
  cmd->callback([&ctx, json] {
    auto r = CompactCorpus(ctx.Config());
    if (!r) return ctx.Report(r.error());
    if (*json) {
      std::cout << JsonText({{"kind", r->kind},
                             {"rows_before", r->rows_before},
                             {"delta_rows_before", r->delta_rows_before},
                             {"faces", r->faces},
                             {"bytes_before", r->bytes_before},
                             {"bytes_after", r->bytes_after},
                             {"retrained", r->retrained},
                             {"seconds", RoundDecimals(r->seconds, 3)}})
                << "\n";
    } else {
      std::cout << "index:      " << r->kind << "\n"
                << "rows:       " << r->rows_before << " (" << r->delta_rows_before << " in the delta) -> "
                << r->faces << " faces\n"
                << "file:       " << r->bytes_before << " -> " << r->bytes_after << " bytes\n"
                << "structure:  " << (r->retrained ? "trained anew (a small corpus)" : "training kept") << "\n"
                << "time:       " << Fixed(r->seconds, 2) << " s\n";
    }
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
