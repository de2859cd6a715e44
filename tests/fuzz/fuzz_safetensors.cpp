// Safetensors headers and offsets: any byte string either opens as a consistent file or is refused with
// ditgen::Error; never a crash, an out-of-bounds read or another exception. Metadata values are parsed
// and printed as JSON, as ditgen does with a model's description.
#include "ditgen/core/error.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/safetensors.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  try {
    io::SafetensorsFile file = io::SafetensorsFile::open(fuzz::write_scratch(data, size));
    size_t total = 0;
    for (const io::TensorView& t : file.tensors()) {
      // Touch every byte the views claim, so ASan sees any range outside the mapping.
      volatile std::byte sink{};
      for (size_t i = 0; i < t.nbytes; i += 4096) sink = t.data[i];
      if (t.nbytes) sink = t.data[t.nbytes - 1];
      (void)sink;
      total += t.nbytes;
      if (file.find(t.name) == nullptr) __builtin_trap();
    }
    if (total > size) __builtin_trap();
    for (const auto& [key, value] : file.metadata()) {
      try {
        fuzz::print_json(io::parse_json(value, ErrorKind::Model, key));
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
