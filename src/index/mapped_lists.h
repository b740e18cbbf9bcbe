// FAISS inverted lists left where FAISS wrote them inside a mapped index file (issue #16): an
// IVF-PQ structure at 30M faces holds 1.2 GB of lists, which FAISS's reader copies into memory
// on every open (and every query process); read through these, a fresh process pays for the
// quantizer and codebooks only, and its pages are the file's (shared by every process through
// the page cache). Internal to src/index/.
//
// The lists are FAISS's own serialisation ("ilar": per non-empty list, its codes, then its ids),
// found through FAISS's hook for reading ArrayInvertedLists data into another type
// (InvertedListsIOHook::read_ArrayInvertedLists, reached with IO_FLAG_SKIP_IVF_DATA and our
// fourcc "ilfs"); the byte counts are checked against the section before any list is used.
// Entries are read and written in place with memcpy (ids are not 8-byte aligned in the file): a
// writer's mapping is MAP_SHARED, so scrubbing an erased entry here scrubs the file; a reader's is
// MAP_PRIVATE, so its scrubs stay in its own pages. Additions are refused (the lists of a mapped
// file never grow: new faces go to the delta; a compaction replaces the lists with FAISS's
// ArrayInvertedLists and refills them).
#pragma once

#include <faiss/invlists/InvertedLists.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace faiss {
struct Index;
}

namespace facesearch {

using ListId = faiss::InvertedLists::idx_t;

class MappedInvertedLists final : public faiss::ReadOnlyInvertedLists {
 public:
  // `data`: the first list's codes; lists follow each other as `sizes` say.
  MappedInvertedLists(size_t lists, size_t bytes_per_code, const std::vector<size_t>& sizes, char* data);

  size_t list_size(size_t list) const override { return sizes_[list]; }
  const uint8_t* get_codes(size_t list) const override;
  const ListId* get_ids(size_t list) const override;

  // Entry `offset` of `list`: its id (memcpy-safe, unaligned) and its code, writable in place.
  ListId id(size_t list, size_t offset) const;
  char* id_at(size_t list, size_t offset) const;
  char* code_at(size_t list, size_t offset) const;
  // Every entry's bytes, for the section-range check of an in-place scrub.
  const char* begin() const { return data_; }
  const char* end() const { return data_ + bytes_; }
  // Why the section could not hold the lists its sizes announce ("" when it could): set instead of
  // throwing inside FAISS's reader, which leaks the index it was building when anything throws.
  const std::string& problem() const { return problem_; }
  static std::unique_ptr<MappedInvertedLists> Refused(size_t lists, size_t bytes_per_code, std::string why);

 private:
  std::vector<size_t> sizes_;
  std::vector<size_t> at_;  // byte offset of each list's codes from data_
  char* data_;
  size_t bytes_ = 0;
  std::string problem_;
};

// Deserialises one FAISS index straight from `bytes` and sets `*read` to the bytes it consumed.
// With `map_lists`, an IVF structure's inverted lists are MappedInvertedLists pointing into
// `bytes`, which must then outlive the index and be writable memory (a mapping). Throws what FAISS
// throws (faiss::FaissException, std::bad_alloc): callers guard it. Only for bytes IndexFile has
// checked.
std::unique_ptr<faiss::Index> ReadFaissIndex(std::string_view bytes, size_t* read, bool map_lists = false);

}  // namespace facesearch
