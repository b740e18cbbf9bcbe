// `facesearch export`
#include <iostream>

#include "cli/cli.h"
#include "cli/format.h"

namespace facesearch::cli {

void AddExportCommand(CLI::App& app, Context& ctx) {
  CLI::App* cmd = app.add_subcommand("export", "Print every face in the corpus as JSON lines");
  cmd->footer("One line per face: face_id, image_id, image, sha256, box, landmarks, det_score and the\n"
              "128-float embedding. The output holds biometric data: store it as carefully as the corpus.\n\n"
              "Examples:\n"
              "  facesearch export > faces.jsonl\n"
              "  facesearch export | jq -r '.image' | sort -u");
  cmd->callback([&ctx] {
    Status s = ExportFaces(ctx.Config(), [](const FaceRecord& r) { std::cout << FaceRecordJson(r) << '\n'; });
    if (!s) return ctx.Report(s.error());
    std::cout.flush();
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
