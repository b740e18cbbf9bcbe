#include "facesearch/error.h"

namespace facesearch {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kNotFound: return "not-found";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kDecode: return "decode";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kModel: return "model";
    case ErrorCode::kDatabase: return "database";
    case ErrorCode::kIndex: return "index";
    case ErrorCode::kMismatch: return "mismatch";
    case ErrorCode::kBusy: return "busy";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace facesearch
