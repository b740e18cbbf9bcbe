// `facesearch export`
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/privacy.h"

namespace facesearch::cli {

void AddExportCommand(CLI::App& app, Context& ctx) {
  auto output = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("export", "Print every face in the corpus as JSON lines");
  cmd->footer("One line per face: face_id, image_id, image, sha256, box, landmarks, det_score and the\n"
              "128-float embedding. The output holds biometric data: store it as carefully as the corpus.\n"
              "--output creates the file with mode 0600 and refuses a directory that other users can\n"
              "list or write. Every export is recorded in the audit log first.\n\n"
              "Examples:\n"
              "  facesearch export --output ~/private/faces.jsonl\n"
              "  facesearch --case 2025-017 export | jq -r '.image' | sort -u");
  cmd->add_option("-o,--output", *output, "Write to this file (created 0600) instead of stdout");
  cmd->callback([&ctx, output] {
    std::ofstream file;
    if (!output->empty()) {
      Status ready = PreparePrivateOutputFile(*output);
      if (!ready) return ctx.Report(ready.error());
      file.open(*output, std::ios::binary | std::ios::trunc);  // keeps the 0600 mode just set
      if (!file) return ctx.Report({ErrorCode::kIo, "cannot open " + *output + " for writing"});
    }
    std::ostream& out = output->empty() ? std::cout : file;
    Status s = ExportFaces(ctx.Config(), [&out](const FaceRecord& r) { out << FaceRecordJson(r) << '\n'; });
    if (!s) return ctx.Report(s.error());
    out.flush();  // stdout is checked for every command by RunCheckingStdout
    if (!output->empty() && !out) return ctx.Report({ErrorCode::kIo, "cannot write the export to " + *output + " (disk full?)"});
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
