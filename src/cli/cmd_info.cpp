// `facesearch info`
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"

namespace facesearch::cli {

void AddInfoCommand(CLI::App& app, Context& ctx) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "Show the corpus location, counts, models and index state");
  cmd->footer("Reads the corpus without changing it and needs no model files.\n\n"
              "Examples:\n"
              "  facesearch info\n"
              "  facesearch --corpus /srv/cases/42 info --json | jq .faces");
  cmd->add_flag("--json", *json, "Print as one JSON object");
  cmd->callback([&ctx, json] {
    auto info = GetCorpusInfo(ctx.Config());
    if (!info) return ctx.Report(info.error());
    const CorpusCounts& c = info->counts;
    if (*json) {
      std::cout << "{\"corpus\":" << JsonString(info->corpus_dir.string())
                << ",\"database\":" << JsonString(info->database.string())
                << ",\"schema_version\":" << info->schema_version
                << ",\"model_identity\":" << JsonString(info->model_identity)
                << ",\"embedding_mode\":" << JsonString(info->embedding_mode)
                << ",\"images\":" << c.images << ",\"images_with_faces\":" << c.images_ok
                << ",\"images_without_face\":" << c.images_noface << ",\"images_error\":" << c.images_error
                << ",\"faces\":" << c.faces << ",\"generation\":" << info->generation
                << ",\"index_state\":" << JsonString(info->index_state)
                << ",\"index_vectors\":" << info->index_vectors << ",\"index_bytes\":" << info->index_bytes
                << "}\n";
    } else {
      std::cout << "corpus:          " << info->corpus_dir.string() << "\n"
                << "database:        " << info->database.string() << " (schema " << info->schema_version << ")\n"
                << "models:          " << info->model_identity << "\n"
                << "embedding mode:  " << info->embedding_mode << "\n"
                << "images:          " << c.images << " (" << c.images_ok << " with faces, " << c.images_noface
                << " without, " << c.images_error << " errors)\n"
                << "faces:           " << c.faces << "\n"
                << "index:           " << info->index_state << ", " << info->index_vectors << " vectors, "
                << info->index_bytes << " bytes (generation " << info->generation << ")\n";
    }
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
