// Where the CLI finds the files that ship with ditgen (models/): next to the source tree it was built
// from, an installed share/ditgen/models, or $DITGEN_MODELS_DIR.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace ditgen::cli {

// The shipped file `name` (e.g. "fmnist-dit.safetensors"), or nullopt when it is nowhere to be found.
std::optional<std::filesystem::path> find_shipped(const std::string& name);

// The folders searched, in order, for messages.
std::string shipped_search_path();

}  // namespace ditgen::cli
