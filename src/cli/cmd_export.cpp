// `facesearch export`
#include <ext/stdio_filebuf.h>

#include <iostream>
#include <memory>
#include <optional>

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
    // The descriptor the file was created with: opening the name again could reach another file.
    std::optional<__gnu_cxx::stdio_filebuf<char>> file_buffer;
    std::ostream file(nullptr);
    if (!output->empty()) {
      auto fd = CreatePrivateOutputFile(*output);
      if (!fd) return ctx.Report(fd.error());
      file.rdbuf(&file_buffer.emplace(*fd, std::ios::out | std::ios::binary));  // closes fd when done
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
