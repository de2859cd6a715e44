// YAML model specs: parsed, converted to JSON and validated as a DiT config; a bad document is an
// ditgen::Error (or a json type error, which model_spec reports as an input error), never a crash.
#include <nlohmann/json.hpp>

#include "ditgen/core/error.h"
#include "ditgen/io/yaml_json.h"
#include "ditgen/models/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  try {
    const nlohmann::json j = io::parse_yaml(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    if (!j.is_object()) return 0;
    DiTConfig config = config_from_json(j.contains("config") ? j["config"] : j);
    config.validate(ErrorKind::Input);
  } catch (const Error&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
