// `facesearch export`
#include <ext/stdio_filebuf.h>

#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include "cli/cli.h"
#include "cli/format.h"
#include "cli/xmp.h"
#include "common/fs.h"
#include "facesearch/embed.h"
#include "facesearch/privacy.h"
#include "facesearch/subject.h"

namespace facesearch::cli {
namespace fs = std::filesystem;

namespace {

// The sidecar name for an image: its file name (of a URL: the last part) + ".xmp", as digiKam and
// darktable name theirs, in characters safe in any folder; "NAME-IMAGEID.xmp" when two images share it.
std::string SidecarName(const FaceRecord& r, std::set<std::string>& taken) {
  std::string name = fs::path(r.image_path).filename().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  if (name.empty() || name.front() == '.') name = "image" + name;
  std::string sidecar = name + ".xmp";
  if (!taken.insert(sidecar).second) {
    sidecar = name + "-" + std::to_string(r.image_id) + ".xmp";
    taken.insert(sidecar);
  }
  return sidecar;
}

// `export --xmp DIR`: one sidecar per image with faces (faces of an image have consecutive ids).
void ExportXmp(Context& ctx, const fs::path& dir) {
  // A new folder is made private; an existing one must already be (CreatePrivateOutputFile).
  std::error_code ec;
  if (!fs::exists(dir, ec))
    if (Status made = EnsurePrivateDir(dir); !made) return ctx.Report(made.error());
  std::vector<FaceRecord> image;
  std::set<std::string> taken;
  Status written = Ok();
  int64_t files = 0;
  auto flush = [&] {
    if (image.empty() || !written) return;
    written = WritePrivateOutputFile(dir / SidecarName(image.front(), taken), MwgRegionsXmp(image));
    ++files;
    image.clear();
  };
  Status s = ExportFaces(
      ctx.Config(),
      [&](const FaceRecord& r) {
        if (!image.empty() && image.front().image_id != r.image_id) flush();
        image.push_back(r);
      },
      /*xmp=*/true);
  flush();
  if (!s) return ctx.Report(s.error());
  if (!written) return ctx.Report(written.error());
  std::cerr << "wrote " << files << " XMP sidecar(s) to " << TerminalText(dir.string()) << "\n";
  ctx.exit_code = kExitMatch;
}

// --output FILE, created 0600, written through the descriptor it was created with (opening the
// name again could reach another file); stdout without one. stdout is checked for every command
// by RunCheckingStdout.
class ExportOutput {
 public:
  Status Open(const std::string& path) {
    path_ = path;
    if (path.empty()) return Ok();
    FS_ASSIGN(int fd, CreatePrivateOutputFile(path));
    file_.rdbuf(&buffer_.emplace(fd, std::ios::out | std::ios::binary));  // closes fd when done
    return Ok();
  }
  std::ostream& stream() { return path_.empty() ? std::cout : file_; }
  Status Finish() {
    stream().flush();
    if (!path_.empty() && !file_) return Fail(ErrorCode::kIo, "cannot write the export to " + path_ + " (disk full?)");
    return Ok();
  }

 private:
  std::string path_;
  std::optional<__gnu_cxx::stdio_filebuf<char>> buffer_;
  std::ostream file_{nullptr};
};

// "FIRST" or "FIRST-LAST" within [0, count).
Result<std::pair<int64_t, int64_t>> ParseBucketRange(const std::string& text, int64_t count) {
  const size_t dash = text.find('-');
  auto number = [](const std::string& t) -> std::optional<int64_t> {
    if (t.empty() || t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoll(t);
  };
  auto first = number(text.substr(0, dash));
  auto last = dash == std::string::npos ? first : number(text.substr(dash + 1));
  if (!first || !last || *first > *last || *last >= count)
    return Fail(ErrorCode::kInvalidArgument, "--bucket " + text + ": give FIRST or FIRST-LAST with FIRST <= LAST < " +
                                                 std::to_string(count) + " (the --bucket-count)");
  return std::pair{*first, *last};
}

// `export --embed-file [--bucket-count N --bucket A-B ...]`.
void ExportEmbed(Context& ctx, const std::string& output, int64_t bucket_count, const std::vector<std::string>& ranges) {
  std::optional<BucketSelection> buckets;
  if (bucket_count) {
    buckets.emplace().count = bucket_count;
    for (const std::string& r : ranges) {
      auto range = ParseBucketRange(r, bucket_count);
      if (!range) return ctx.Report(range.error());
      buckets->ranges.push_back(*range);
    }
  }
  ExportOutput out;
  if (Status opened = out.Open(output); !opened) return ctx.Report(opened.error());
  auto done = ExportEmbedFile(ctx.Config(), buckets, out.stream());
  if (!done) return ctx.Report(done.error());
  if (Status written = out.Finish(); !written) return ctx.Report(written.error());
  std::cerr << "exported " << done->images << " image(s), " << done->faces << " face(s) and " << done->tombstones
            << " tombstone(s)\n";
  ctx.exit_code = kExitMatch;
}

}  // namespace

void AddExportCommand(CLI::App& app, Context& ctx) {
  struct ExportArgs {
    std::string output;
    std::string subject;
    std::optional<float> threshold;
    std::string xmp;  // --xmp DIR
    bool embed_file = false;
    int64_t bucket_count = 0;
    std::vector<std::string> buckets;  // --bucket FIRST[-LAST]
  };
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Print every face in the corpus as JSON lines");
  cmd->footer("One line per face: face_id, image_id, image, sha256, box, landmarks, det_score, the\n"
              "provenance, the image's EXIF (capture time, camera, GPS) and the 128-float embedding.\n"
              "The output holds biometric data: store it as carefully as the corpus.\n"
              "--xmp DIR writes instead one XMP sidecar per image (NAME.jpg.xmp) with its faces as MWG\n"
              "face regions, unnamed, for digiKam, Lightroom or Picasa to show; no embedding, no GPS.\n"
              "--output creates the file with mode 0600 and refuses a directory that other users can\n"
              "list or write. Every export is recorded in the audit log first.\n\n"
              "Examples:\n"
              "  facesearch export --output ~/private/faces.jsonl\n"
              "  facesearch --case 2025-017 export | jq -r '.image' | sort -u\n"
              "  facesearch --case 2025-017 export --subject 'J. Doe' -o doe.jsonl   # before forget --subject\n"
              "  facesearch export --xmp ~/private/sidecars && ls ~/private/sidecars\n"
              "  facesearch export --embed-file --bucket-count 4096 --bucket 2048-2303 -o moved.jsonl\n"
              "  facesearch --corpus /srv/fs/shard4 import moved.jsonl   # the same faces, bit for bit\n"
              "--embed-file writes the embed file that `import` reads (docs/output.md, \"Embed files\"): the\n"
              "images with faces and the tombstones, restricted with --bucket to content whose bucket\n"
              "(the SHA-256's first 8 hex digits as a number, modulo --bucket-count) is in a range.");
  CLI::Option* output_option =
      cmd->add_option("-o,--output", args->output, "Write to this file (created 0600) instead of stdout");
  cmd->add_option("--subject", args->subject,
                  "Only a subject's faces: those within --threshold of the mean of its references and the faces "
                  "they came from (what `forget --subject` erases), nearest first, each with subject and "
                  "subject_distance");
  cmd->add_option("-t,--threshold", args->threshold, "Distance limit for --subject")
      ->check(CLI::Range(0.0, 2.0))
      ->default_str("where the subject's references have one photo's false-match rate at 0.6 (dlib)");
  cmd->add_option("--xmp", args->xmp, "Write MWG face-region XMP sidecars into this folder (created 0700; files 0600)")
      ->excludes(output_option);
  CLI::Option* embed_option = cmd->add_flag(
      "--embed-file", args->embed_file,
      "Write an embed file for `import` (images with faces, tombstones) instead of JSON lines");
  embed_option->excludes("--xmp")->excludes("--subject");
  cmd->add_option("--bucket-count", args->bucket_count, "Buckets in all, for --bucket (facesearch-cluster's `buckets`)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->needs(embed_option);
  cmd->add_option("--bucket", args->buckets, "Only content in this bucket or inclusive range FIRST-LAST (repeatable)")
      ->needs("--bucket-count");
  cmd->callback([&ctx, args] {
    if (args->bucket_count && args->buckets.empty())
      return ctx.Report(Error{ErrorCode::kInvalidArgument, "--bucket-count needs --bucket FIRST[-LAST]"});
    if (args->embed_file) return ExportEmbed(ctx, args->output, args->bucket_count, args->buckets);
    if (!args->xmp.empty() && !args->subject.empty())
      return ctx.Report(Error{ErrorCode::kInvalidArgument, "--xmp writes every image's faces: leave out --subject"});
    if (!args->xmp.empty()) return ExportXmp(ctx, args->xmp);
    ExportOutput output;
    if (Status opened = output.Open(args->output); !opened) return ctx.Report(opened.error());
    std::ostream& out = output.stream();
    auto subject_line = [&](const FaceRecord& r, float distance) {
      out << FaceRecordLine(r, {{"subject", args->subject}, {"subject_distance", RoundDecimals(distance, 4)}}) << '\n';
    };
    Result<float> threshold = args->subject.empty() ? 0.0f : SubjectThresholdFor(ctx, args->subject, args->threshold);
    if (!threshold) return ctx.Report(threshold.error());
    Status s = args->subject.empty()
                   ? ExportFaces(ctx.Config(), [&out](const FaceRecord& r) { out << FaceRecordLine(r) << '\n'; })
                   : ExportSubjectFaces(ctx.Config(), args->subject, *threshold, subject_line);
    if (!s) return ctx.Report(s.error());
    if (Status written = output.Finish(); !written) return ctx.Report(written.error());
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
