// facesearch's library API: searching a corpus with photos, embed files and subjects.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "facesearch/config.h"

namespace facesearch {

// One photo to analyze: a file, image bytes the caller has read (from a socket...), or the photo
// "-", read from a stream the caller passes (the CLI: standard input) when its turn comes. The
// engine never reads std::cin itself.
struct ProbeImage {
  std::string name;                  // reported as QueryResult::probe_path / PhotoFaces::path
  std::optional<std::string> bytes;  // unset: read the file `name`, or `stream`
  std::istream* stream = nullptr;    // when set: read to its end; its messages say "stdin"

  static ProbeImage File(std::string path) { return {std::move(path), std::nullopt}; }
  static ProbeImage Bytes(std::string name, std::string data) { return {std::move(name), std::move(data)}; }
  static ProbeImage Stdin(std::istream& in) { return {"-", std::nullopt, &in}; }
};

struct QueryOptions {
  PipelineOptions pipeline;
  int top_k = 10;
  float threshold = 0.6f;  // dlib's same-person Euclidean distance on LFW
  bool all_faces = false;  // default: only the probe's largest face
  std::optional<int> face;  // instead: the probe's face with this index (0-based, detector order)
  // Matches in copies of one picture (near-duplicate images: resized, recompressed, lightly
  // cropped) are folded into the nearest of them, which counts them in Match::copies. False
  // (`--no-collapse`): every match is returned, the copies naming theirs in Match::copy_of.
  // Grouping happens after top_k: a probe face may get fewer than top_k pictures.
  bool collapse_copies = true;
};

struct Match {
  int rank = 0;  // 1-based, by distance
  int64_t face_id = 0;
  float distance = 0;
  std::string image_path;
  std::string image_sha256;
  Box box;
  Provenance provenance;  // of the matched image
  PhotoMetadata photo;    // the matched image's EXIF: capture time, camera, GPS
  int copies = 0;         // other matches in copies of this image's picture (see collapse_copies)
  std::optional<int64_t> copy_of;  // not collapsed: the face id of the nearest match in a copy
  std::optional<VideoSpan> video;  // a face in a video: its frame and the track's time range
};

struct ProbeFace {
  int index = 0;  // position among the faces detected in the probe (0-based, detector order)
  Face face;
  FaceQuality quality;
  std::vector<Match> matches;  // at most top_k, all within the threshold, nearest first
};

struct QueryResult {
  std::string probe_path;  // "-" for stdin; "subject:NAME" for a subject
  std::string subject;     // the subject searched with (Corpus::QuerySubject), else empty
  int references = 0;      // the subject's references used (its template's size)
  float threshold = 0;     // the threshold the matches are within
  std::string probe_sha256;
  int faces_detected = 0;
  int64_t corpus_faces = 0;
  std::vector<ProbeFace> probes;  // empty when the probe has no face
  bool any_match() const;
};

// The answer for one probe photo of a query: its result, or why it could not be searched.
struct ProbeOutcome {
  std::string photo;
  QueryResult result;          // meaningful when !error
  std::optional<Error> error;  // unreadable or undecodable photo, or a --face it does not have
};

// Searches the corpus with each probe (a file, bytes, or ProbeImage::Stdin), through one
// corpus handle (facesearch/corpus.h): the models and the index are loaded once. A photo that cannot be searched gets its error in its outcome and
// the others go on; a probe with no face is a normal result. Each searched probe's audit record
// (facesearch/privacy.h) is committed before this returns: no record, no result. Matches within
// an opt-out are never returned. Errors: setup failures (corpus, models, --top-k, audit).
Result<std::vector<ProbeOutcome>> QueryPhotos(const CorpusConfig& config,
                                              const std::vector<ProbeImage>& probes,
                                              const QueryOptions& options);

// The same for the records of an embed file (`facesearch embed`, facesearch/embed.h; read from
// `in` when the caller passes a stream, as ReadEmbedFile) as probes: each record's faces are searched as its photo's would be (Corpus::QueryEmbedding:
// the same matches and distances); a record of an input that could not be embedded becomes an
// outcome with its error. Errors: setup failures, and kInvalidArgument for a malformed file or
// one of other models or another embedding mode than the corpus's.
Result<std::vector<ProbeOutcome>> QueryEmbedded(const CorpusConfig& config, const std::string& embed_file,
                                                std::istream* in, const QueryOptions& options);
// Searches with each named subject (Corpus::QuerySubject) through one corpus handle, each with
// its own options (the threshold depends on its number of references). Errors: those of
// QuerySubject; a subject that does not exist fails the whole call before any search.
Result<std::vector<ProbeOutcome>> QuerySubjects(const CorpusConfig& config,
                                                const std::vector<std::pair<std::string, QueryOptions>>& subjects);

// Co-appearance (`query --together`): an image in which every probe of a query (a photo's chosen
// faces, or a subject) has a match, each by a different face.
struct TogetherImage {
  std::string image_path;
  std::string image_sha256;
  std::vector<Match> matches;  // one per outcome, in the outcomes' order
  float worst_distance = 0;    // the largest of their distances
};
// The images where all `outcomes` match (those with an error or no face make the answer empty),
// by content (SHA-256), each probe assigned a distinct face, nearest first within each probe;
// ordered by worst_distance. Only the matches the outcomes hold count: raise --top-k for more.
std::vector<TogetherImage> FindTogether(const std::vector<ProbeOutcome>& outcomes);

}  // namespace facesearch
