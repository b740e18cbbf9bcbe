// Inverted lists read in place from a mapped index file (mapped_lists.h).
#include "index/mapped_lists.h"

#include <faiss/Index.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedListsIOHook.h>

#include <cstring>
#include <mutex>
#include <typeinfo>

namespace facesearch {
namespace {

// FAISS's reader interface over a byte range.
struct SpanReader : faiss::IOReader {
  std::string_view bytes;
  size_t at = 0;
  explicit SpanReader(std::string_view b) : bytes(b) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0 || nitems == 0) return 0;
    const size_t n = std::min(nitems, (bytes.size() - at) / size);
    if (n > 0) std::memcpy(ptr, bytes.data() + at, n * size);
    at += n * size;
    return n;
  }
};

constexpr const char* kMappedKey = "ilfs";

struct MappedListsHook final : faiss::InvertedListsIOHook {
  MappedListsHook() : InvertedListsIOHook(kMappedKey, typeid(MappedInvertedLists).name()) {}

  // Written as FAISS writes ArrayInvertedLists ("ilar"), so that a file never names this type.
  void write(const faiss::InvertedLists* ils, faiss::IOWriter* f) const override {
    auto put = [f](const void* data, size_t size, size_t n) {
      FAISS_THROW_IF_NOT((*f)(data, size, n) == n);
    };
    const uint32_t fourcc = faiss::fourcc("ilar");
    put(&fourcc, sizeof fourcc, 1);
    put(&ils->nlist, sizeof ils->nlist, 1);
    put(&ils->code_size, sizeof ils->code_size, 1);
    std::vector<size_t> sizes;
    for (size_t l = 0; l < ils->nlist; ++l) sizes.push_back(ils->list_size(l));
    // FAISS's "full" form (a size per list): it reads "sprs" and "full" alike.
    const uint32_t full = faiss::fourcc("full");
    put(&full, sizeof full, 1);
    const size_t count = sizes.size();
    put(&count, sizeof count, 1);
    put(sizes.data(), sizeof(size_t), sizes.size());
    for (size_t l = 0; l < ils->nlist; ++l) {
      if (sizes[l] == 0) continue;
      put(ils->get_codes(l), 1, sizes[l] * ils->code_size);
      put(ils->get_ids(l), sizeof(ListId), sizes[l]);
    }
  }

  faiss::InvertedLists* read(faiss::IOReader*, int) const override {
    FAISS_THROW_MSG("mapped inverted lists are never named in a file");
  }

  faiss::InvertedLists* read_ArrayInvertedLists(faiss::IOReader* f, int /*io_flags*/, size_t nlist, size_t code_size,
                                                const std::vector<size_t>& sizes) const override {
    // Nothing here throws on a bad section (FAISS's reader would leak the index it is building):
    // the lists come back empty with their problem, which ReadFaissIndex turns into an exception.
    auto* reader = dynamic_cast<SpanReader*>(f);
    if (!reader || sizes.size() != nlist || code_size == 0)
      return MappedInvertedLists::Refused(nlist, code_size, "inconsistent inverted lists").release();
    size_t bytes = 0;
    const size_t entry = code_size + sizeof(ListId);
    const size_t left = reader->bytes.size() - reader->at;
    for (size_t n : sizes) {
      // Checked before any multiplication can wrap: a crafted size must not pass as small.
      if (n > left / entry || bytes + n * entry > left)
        return MappedInvertedLists::Refused(nlist, code_size, "inverted lists past the section's end").release();
      bytes += n * entry;
    }
    auto* lists = new MappedInvertedLists(nlist, code_size, sizes, const_cast<char*>(reader->bytes.data() + reader->at));
    reader->at += bytes;
    return lists;
  }
};

int MappedListsReadFlags() {
  static std::once_flag registered;
  std::call_once(registered, [] { faiss::InvertedListsIOHook::add_callback(new MappedListsHook()); });
  return faiss::IO_FLAG_SKIP_IVF_DATA | static_cast<int>(faiss::fourcc(kMappedKey) & 0xffff0000u);
}

}  // namespace

MappedInvertedLists::MappedInvertedLists(size_t lists, size_t bytes_per_code, const std::vector<size_t>& sizes,
                                         char* data)
    : ReadOnlyInvertedLists(lists, bytes_per_code), sizes_(sizes), at_(lists), data_(data) {
  for (size_t l = 0; l < lists; ++l) {
    at_[l] = bytes_;
    bytes_ += sizes_[l] * (code_size + sizeof(ListId));
  }
}

std::unique_ptr<MappedInvertedLists> MappedInvertedLists::Refused(size_t lists, size_t bytes_per_code, std::string why) {
  auto refused = std::make_unique<MappedInvertedLists>(lists, bytes_per_code, std::vector<size_t>(lists), nullptr);
  refused->problem_ = std::move(why);
  return refused;
}

const uint8_t* MappedInvertedLists::get_codes(size_t list) const {
  return reinterpret_cast<const uint8_t*>(data_ + at_[list]);
}

const ListId* MappedInvertedLists::get_ids(size_t list) const {
  return reinterpret_cast<const ListId*>(id_at(list, 0));
}

ListId MappedInvertedLists::id(size_t list, size_t offset) const {
  ListId v = 0;
  std::memcpy(&v, id_at(list, offset), sizeof v);
  return v;
}

char* MappedInvertedLists::id_at(size_t list, size_t offset) const {
  return data_ + at_[list] + sizes_[list] * code_size + offset * sizeof(ListId);
}

char* MappedInvertedLists::code_at(size_t list, size_t offset) const {
  return data_ + at_[list] + offset * code_size;
}

std::unique_ptr<faiss::Index> ReadFaissIndex(std::string_view bytes, size_t* read, bool map_lists) {
  SpanReader reader(bytes);
  std::unique_ptr<faiss::Index> index(faiss::read_index(&reader, map_lists ? MappedListsReadFlags() : 0));
  *read = reader.at;
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index.get()))
    if (const auto* lists = dynamic_cast<const MappedInvertedLists*>(ivf->invlists); lists && !lists->problem().empty())
      FAISS_THROW_MSG(lists->problem());  // the index is ours now: freed, not leaked
  return index;
}

}  // namespace facesearch
