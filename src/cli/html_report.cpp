// The visual query report: probe faces beside their matched face crops, as one HTML file.
#include "cli/html_report.h"
#include "cli/format.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/base64.h"
#include "common/fs.h"
#include "common/utf8.h"
#include "common/sha256.h"
#include "facesearch/analyze.h"
#include "facesearch/eval.h"
#include "facesearch/privacy.h"
#include "facesearch/version.h"

namespace facesearch::cli {
namespace {

constexpr int kProbeThumb = 200;  // longer side of a probe face crop, pixels
constexpr int kMatchThumb = 160;

std::string Fixed(double v, int decimals) { return fmt::format("{:.{}f}", v, decimals); }
std::string Short(double v) { return fmt::format("{:.2g}", v); }

std::string BoxText(const Box& b) {
  return fmt::format("{}&times;{} px at ({}, {})", b.w, b.h, b.x, b.y);
}

// An <img> of a JPEG crop, or a grey placeholder naming why there is none.
std::string Thumb(const std::string& jpeg, const std::string& alt, const std::string& why_missing) {
  if (!jpeg.empty())
    return "<img class=\"thumb\" alt=\"" + HtmlEscape(alt) + "\" src=\"data:image/jpeg;base64," + Base64Encode(jpeg) + "\">";
  return "<div class=\"thumb missing\">" + HtmlEscape(why_missing) + "</div>";
}

// Crops for the given boxes of one image file, checked against the SHA-256 recorded at indexing
// (a changed file would put the boxes on someone else). On failure: empty crops and the reason.
struct Crops {
  std::vector<std::string> jpegs;
  std::string why_missing;
};

Crops CropsOf(std::string_view bytes, const std::string& expected_sha256, const std::vector<Box>& boxes,
              const PipelineOptions& limits, int max_side) {
  Crops c;
  c.jpegs.resize(boxes.size());
  if (!expected_sha256.empty() && Sha256Hex(bytes) != expected_sha256) {
    c.why_missing = "image changed since it was indexed";
    return c;
  }
  auto thumbs = FaceThumbnails(bytes, boxes, limits, max_side);
  if (!thumbs) {
    c.why_missing = "image cannot be decoded";
    return c;
  }
  c.jpegs = std::move(*thumbs);
  c.why_missing = "face box outside the image";
  return c;
}

Crops CropsOfFile(const std::string& path, const std::string& sha256, const std::vector<Box>& boxes,
                  const PipelineOptions& limits, int max_side) {
  auto bytes = ReadFile(path, static_cast<size_t>(limits.max_file_bytes));
  if (!bytes) {
    Crops c;
    c.jpegs.resize(boxes.size());
    c.why_missing = bytes.error().code == ErrorCode::kNotFound ? "image no longer at this path" : "image unreadable";
    return c;
  }
  return CropsOf(*bytes, sha256, boxes, limits, max_side);
}

const char* BandClass(double fmr) {
  std::string_view band = ConfidenceBand(fmr);
  if (band == "very strong") return "b5";
  if (band == "strong") return "b4";
  if (band == "moderate") return "b3";
  if (band == "weak") return "b2";
  return "b1";
}

constexpr const char* kStyle = R"css(
:root{--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:24px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:0 0 6px;word-break:break-all}
code,.path{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;word-break:break-all}
.meta{color:var(--muted);margin:0 0 12px}
.caution{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:10px 14px;margin:12px 0 20px;max-width:1100px}
.caution strong{display:block;margin-bottom:2px}
.probe{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px;margin:0 0 20px}
.row{display:flex;gap:16px;align-items:flex-start;border-top:1px solid var(--line);padding-top:12px;margin-top:12px}
.probe-face{flex:0 0 220px;margin:0;padding:10px;background:#eef3ff;border:2px solid #0969da;border-radius:8px}
.probe-face figcaption{margin-top:6px;font-size:12px}
.low-quality{color:#953800;font-weight:600}
.matches{display:flex;flex-wrap:wrap;gap:12px;flex:1}
.card{width:224px;border:1px solid var(--line);border-radius:8px;padding:8px;background:var(--card)}
.thumb{display:block;width:100%;max-width:200px;aspect-ratio:1/1;object-fit:contain;background:#222;border-radius:4px}
.thumb.missing{display:flex;align-items:center;justify-content:center;text-align:center;color:#ddd;font-size:12px;padding:8px}
.rank{font-weight:700;font-size:15px;margin:6px 0 2px}
dl{display:grid;grid-template-columns:auto 1fr;gap:1px 8px;margin:0;font-size:12px}
dt{color:var(--muted)}dd{margin:0}
.band{display:inline-block;padding:0 6px;border-radius:10px;font-weight:600;color:#fff}
.b5{background:#1a7f37}.b4{background:#2da44e}.b3{background:#bf8700}.b2{background:#d1242f}.b1{background:#82071e}
.status{font-size:15px;font-weight:600;padding:10px 14px;border-radius:6px;margin:8px 0}
.no-match{background:#eaeef2;color:#24292f;border:1px dashed #8c959f}
.no-face{background:#fff1e5;color:#953800;border:1px dashed #bc4c00}
.error{background:#ffebe9;color:#82071e;border:1px solid #ff8182}
footer{color:var(--muted);font-size:12px;margin-top:24px}
)css";

// A track's time range and the frame its face comes from.
std::string VideoSeen(const VideoSpan& v) {
  return Timecode(v.first_s) + " &ndash; " + Timecode(v.last_s) + " (frame " + std::to_string(v.frame) + ")";
}

// Faces in videos get no crop: that would mean decoding the video up to the frame.
// A face stored from a video, cut from its frame (VideoFaceThumbnail: the video decoded up to it).
Crops VideoCrop(const std::string& path, const std::string& sha256, const VideoSpan& video, const Box& box,
                const PipelineOptions& options, int max_side) {
  auto jpeg = VideoFaceThumbnail(path, sha256, video, box, options, max_side);
  if (jpeg) return Crops{{std::move(*jpeg)}, ""};
  return Crops{{std::string()}, "video frame unavailable (" + jpeg.error().message + "): open it at the time shown"};
}

std::string MatchCard(const Match& m, const Calibration& cal, const std::string& jpeg, const std::string& why_missing) {
  const double fmr = cal.Fmr(m.distance);
  std::string s = fmt::format("<article class=\"card match\" data-rank=\"{}\" data-distance=\"{}\">", m.rank,
                              Fixed(m.distance, 4));
  s += Thumb(jpeg, "matched face " + std::to_string(m.face_id), why_missing);
  s += fmt::format("<div class=\"rank\">#{}</div><dl>", m.rank);
  s += "<dt>distance</dt><dd>" + Fixed(m.distance, 4) + "</dd>";
  s += "<dt>FMR</dt><dd>" + Short(fmr) + "</dd>";
  s += std::string("<dt>confidence</dt><dd><span class=\"band ") + BandClass(fmr) + "\">" +
       HtmlEscape(ConfidenceBand(fmr)) + "</span></dd>";
  // Provenance from the manifest or URL list the image came from; a plain file's folder otherwise.
  const Provenance& p = m.provenance;
  const std::string source =
      p.source.empty() ? std::filesystem::path(m.image_path).parent_path().string() : p.source;
  s += "<dt>source</dt><dd class=\"path\">" + HtmlEscape(source) + "</dd>";
  auto row = [&s](const char* name, const std::string& value) {
    if (!value.empty()) s += std::string("<dt>") + name + "</dt><dd class=\"path\">" + HtmlEscape(value) + "</dd>";
  };
  row("page", p.page_url);
  row("captured", p.captured_at);
  row("licence", p.licence);
  row("notes", p.notes);
  // What the image's own EXIF claims (the manifest's "captured" above is a person's statement).
  row("taken (EXIF)", m.photo.taken_at);
  row("camera", CameraName(m.photo));
  if (m.photo.latitude)
    row("GPS", Fixed(*m.photo.latitude, 6) + ", " + Fixed(*m.photo.longitude, 6));
  if (m.copies > 0) row("copies", "+" + std::to_string(m.copies) + " near-duplicate image(s) of this picture");
  if (m.copy_of) row("copy of", "face " + std::to_string(*m.copy_of));
  s += std::string("<dt>") + (m.video ? "video" : "image") + "</dt><dd class=\"path\">" + HtmlEscape(m.image_path) + "</dd>";
  if (m.video) s += "<dt>seen</dt><dd>" + VideoSeen(*m.video) + "</dd>";
  s += "<dt>face</dt><dd>id " + std::to_string(m.face_id) + ", " + BoxText(m.box) + "</dd>";
  s += "<dt>SHA-256</dt><dd class=\"path\">" + HtmlEscape(m.image_sha256.substr(0, 16)) + "&hellip;</dd>";
  return s + "</dl></article>";
}

std::string ProbeSection(size_t n, const ProbeOutcome& o, const QueryOptions& photo_options,
                         const Calibration& photo_cal, const HtmlReportContext& ctx) {
  // A subject's section: its own threshold and the calibration of its number of references.
  const auto [options, cal] = ScaleOf(o, photo_options, photo_cal);
  std::string s = fmt::format("<section class=\"probe\" id=\"probe-{}\">", n);
  s += fmt::format("<h2>Probe {}: <span class=\"path\">{}</span></h2>", n,
                   HtmlEscape(o.photo == "-" ? std::string("standard input") : o.photo));
  if (o.error) return s + "<p class=\"status error\">Could not be searched: " + HtmlEscape(o.error->message) + "</p></section>";
  const QueryResult& r = o.result;
  if (!r.subject.empty())
    s += fmt::format("<p class=\"meta\">Subject <b>{}</b>: {} reference face(s), searched as their mean &middot; "
                     "threshold {} ({} table)</p>",
                     HtmlEscape(r.subject), r.references, Fixed(options.threshold, 2), HtmlEscape(cal.mode()));
  else
    s += fmt::format("<p class=\"meta\">SHA-256 <code>{}</code> &middot; {} face(s) detected</p>",
                     HtmlEscape(r.probe_sha256), r.faces_detected);
  if (r.faces_detected == 0 || r.probes.empty())
    return s + "<p class=\"status no-face\">No face in this probe: nothing was searched. A small or turned face may be "
               "found with --upsample 2 or --detector cnn.</p></section>";

  // Probe face crops: decode the probe once.
  std::vector<Box> boxes;
  for (const ProbeFace& p : r.probes) boxes.push_back(p.face.box);
  Crops probe_crops;
  if (!r.subject.empty()) {
    probe_crops = Crops{std::vector<std::string>(boxes.size()), "the mean of the subject's reference faces"};
  } else if (r.probes.front().face.video) {
    for (const ProbeFace& p : r.probes) {
      Crops one = VideoCrop(o.photo, r.probe_sha256, *p.face.video, p.face.box, options.pipeline, kProbeThumb);
      probe_crops.jpegs.push_back(std::move(one.jpegs[0]));
      if (!one.why_missing.empty()) probe_crops.why_missing = one.why_missing;
    }
  } else if (o.photo == "-" && ctx.stdin_bytes) {
    probe_crops = CropsOf(*ctx.stdin_bytes, r.probe_sha256, boxes, options.pipeline, kProbeThumb);
  } else if (o.photo == "-") {
    probe_crops = Crops{std::vector<std::string>(boxes.size()), "probe read from standard input"};
  } else {
    probe_crops = CropsOfFile(o.photo, r.probe_sha256, boxes, options.pipeline, kProbeThumb);
  }

  for (size_t i = 0; i < r.probes.size(); ++i) {
    const ProbeFace& p = r.probes[i];
    s += "<div class=\"row\"><figure class=\"probe-face\">";
    s += Thumb(probe_crops.jpegs[i], "probe face " + std::to_string(p.index), probe_crops.why_missing);
    std::string quality;
    if (p.quality.low()) {
      std::string issues;
      for (const std::string& issue : p.quality.issues) issues += (issues.empty() ? "" : ", ") + issue;
      quality = "<br><span class=\"low-quality\">Low-quality probe (" + HtmlEscape(issues) +
                "): distances are less reliable</span>";
    }
    if (!r.subject.empty())
      s += "<figcaption><b>Subject " + HtmlEscape(r.subject) + "</b></figcaption></figure>";
    else
      s += fmt::format("<figcaption><b>Probe face {}</b><br>{}{}{}</figcaption></figure>", p.index,
                       BoxText(p.face.box), p.face.video ? "<br>" + VideoSeen(*p.face.video) : "", quality);
    s += "<div class=\"matches\">";
    std::vector<const Match*> sorted;
    for (const Match& m : p.matches) sorted.push_back(&m);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Match* a, const Match* b) { return a->distance < b->distance; });
    if (sorted.empty())
      s += fmt::format("<p class=\"status no-match\">No match: no face among the {} in the corpus is within "
                       "distance {}.</p>",
                       r.corpus_faces, Fixed(options.threshold, 2));
    for (const Match* m : sorted) {
      Crops c = m->video
                    ? VideoCrop(m->image_path, m->image_sha256, *m->video, m->box, options.pipeline, kMatchThumb)
                    : CropsOfFile(m->image_path, m->image_sha256, {m->box}, options.pipeline, kMatchThumb);
      s += MatchCard(*m, cal, c.jpegs[0], c.why_missing);
    }
    s += "</div></div>";
  }
  return s + "</section>";
}

std::string UtcNow() {
  return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", fmt::gmtime(std::chrono::system_clock::to_time_t(
                                                         std::chrono::system_clock::now())));
}

}  // namespace

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (n == 0 || (n == 1 && ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F))) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    ++i;
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += static_cast<char>(c);
    }
  }
  return out;
}

std::string RenderHtmlReport(const std::vector<ProbeOutcome>& outcomes, const QueryOptions& options,
                             const HtmlReportContext& ctx) {
  int64_t corpus_faces = 0;
  size_t matches = 0;
  for (const ProbeOutcome& o : outcomes) {
    if (o.error) continue;
    corpus_faces = std::max(corpus_faces, o.result.corpus_faces);
    for (const ProbeFace& p : o.result.probes) matches += p.matches.size();
  }
  const Calibration cal = ctx.calibration ? *ctx.calibration : Calibration::For(EmbeddingMode{});
  const double threshold_fmr = cal.Fmr(options.threshold);
  const double expected = threshold_fmr * static_cast<double>(corpus_faces);

  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
      "style-src 'unsafe-inline'\">"
      "<meta name=\"referrer\" content=\"no-referrer\"><meta name=\"robots\" content=\"noindex\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>facesearch query report</title><style>";
  s += kStyle;
  s += "</style></head><body><header><h1>facesearch query report</h1>";
  s += fmt::format("<p class=\"meta\">{} &middot; {} probe(s), {} match(es) &middot; corpus of {} faces &middot; "
                   "threshold {} (FMR {}), top {} per face",
                   UtcNow(), outcomes.size(), matches, corpus_faces, Fixed(options.threshold, 2),
                   Short(threshold_fmr), options.top_k);
  if (!ctx.case_id.empty()) s += " &middot; case " + HtmlEscape(ctx.case_id);
  if (!ctx.purpose.empty()) s += " &middot; purpose: " + HtmlEscape(ctx.purpose);
  s += "</p></header>";
  s += fmt::format(
      "<aside class=\"caution\"><strong>A match is a lead for a person to check, not an identification.</strong>"
      "Distance is how alike two faces look to the model; FMR is the share of different-person pairs that came "
      "this close in the LFW calibration. At this threshold about {} different-person faces are expected among "
      "the {} in the corpus, and accuracy drops with small, blurred, turned or old photos. Check every match "
      "against other evidence before acting on it. This page holds biometric images: keep it private and delete "
      "it when the case no longer needs it.{}</aside>",
      Fixed(expected, 1), corpus_faces,
      cal.exact() ? std::string()
                  : " No calibration was measured for this corpus's embedding mode: the FMRs come from the " +
                        HtmlEscape(cal.mode()) + " table and are approximate.");
  s += "<main>";
  for (size_t i = 0; i < outcomes.size(); ++i) s += ProbeSection(i + 1, outcomes[i], options, cal, ctx);
  s += "</main><footer>Written by facesearch " FACESEARCH_VERSION
       ". Matches sorted nearest first; every search is recorded in the corpus audit log.</footer></body></html>\n";
  return s;
}

Status WriteHtmlReport(const std::filesystem::path& path, const std::vector<ProbeOutcome>& outcomes,
                       const QueryOptions& options, const HtmlReportContext& context) {
  return WritePrivateOutputFile(path, RenderHtmlReport(outcomes, options, context));
}

}  // namespace facesearch::cli
