// `facesearch export`
#include <ext/stdio_filebuf.h>

#include <iostream>
#include <memory>
#include <optional>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/privacy.h"
#include "facesearch/subject.h"

namespace facesearch::cli {

void AddExportCommand(CLI::App& app, Context& ctx) {
  struct ExportArgs {
    std::string output;
    std::string subject;
    float threshold = 0.6f;
  };
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Print every face in the corpus as JSON lines");
  cmd->footer("One line per face: face_id, image_id, image, sha256, box, landmarks, det_score and the\n"
              "128-float embedding. The output holds biometric data: store it as carefully as the corpus.\n"
              "--output creates the file with mode 0600 and refuses a directory that other users can\n"
              "list or write. Every export is recorded in the audit log first.\n\n"
              "Examples:\n"
              "  facesearch export --output ~/private/faces.jsonl\n"
              "  facesearch --case 2025-017 export | jq -r '.image' | sort -u\n"
              "  facesearch --case 2025-017 export --subject 'J. Doe' -o doe.jsonl   # before forget --subject");
  cmd->add_option("-o,--output", args->output, "Write to this file (created 0600) instead of stdout");
  cmd->add_option("--subject", args->subject,
                  "Only a subject's faces: those within --threshold of the mean of its references and the faces "
                  "they came from (what `forget --subject` erases), nearest first, each with subject and "
                  "subject_distance");
  cmd->add_option("-t,--threshold", args->threshold, "Distance limit for --subject")
      ->check(CLI::Range(0.0, 2.0))
      ->capture_default_str();
  cmd->callback([&ctx, args] {
    const std::string* output = &args->output;
    // The descriptor the file was created with: opening the name again could reach another file.
    std::optional<__gnu_cxx::stdio_filebuf<char>> file_buffer;
    std::ostream file(nullptr);
    if (!output->empty()) {
      auto fd = CreatePrivateOutputFile(*output);
      if (!fd) return ctx.Report(fd.error());
      file.rdbuf(&file_buffer.emplace(*fd, std::ios::out | std::ios::binary));  // closes fd when done
    }
    std::ostream& out = output->empty() ? std::cout : file;
    auto subject_line = [&](const FaceRecord& r, float distance) {
      std::string line = FaceRecordJson(r);
      line.pop_back();  // the closing brace: the subject's fields follow
      out << line << ",\"subject\":" << JsonString(args->subject) << ",\"subject_distance\":" << JsonFixed(distance, 4)
          << "}\n";
    };
    Status s = args->subject.empty()
                   ? ExportFaces(ctx.Config(), [&out](const FaceRecord& r) { out << FaceRecordJson(r) << '\n'; })
                   : ExportSubjectFaces(ctx.Config(), args->subject, args->threshold, subject_line);
    if (!s) return ctx.Report(s.error());
    out.flush();  // stdout is checked for every command by RunCheckingStdout
    if (!output->empty() && !out) return ctx.Report({ErrorCode::kIo, "cannot write the export to " + *output + " (disk full?)"});
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
