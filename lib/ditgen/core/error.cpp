#include "ditgen/core/error.h"

namespace ditgen {

const char* kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Runtime: return "runtime error";
    case ErrorKind::Usage: return "usage error";
    case ErrorKind::Input: return "input error";
    case ErrorKind::Model: return "model error";
    case ErrorKind::Output: return "output error";
    case ErrorKind::Partial: return "partial failure";
  }
  return "error";
}

}  // namespace ditgen
