// Where the CLI finds the files that ship with ditgen (models/): next to the source tree it was built
// from, an installed share/ditgen/models, or $DITGEN_MODELS_DIR; likewise the compute-schedule presets.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ditgen/schedule/compute_schedule.h"

namespace ditgen {
struct ModelInfo;
}

namespace ditgen::cli {

// The shipped file `name` (e.g. "fmnist-dit.safetensors"), or nullopt when it is nowhere to be found.
std::optional<std::filesystem::path> find_shipped(const std::string& name);

// The folders searched, in order, for messages.
std::string shipped_search_path();

// Where compute-schedule presets (configs/schedules/NAME.yaml) are looked up: $DITGEN_SCHEDULES_DIR, the
// source tree, an installed share/ditgen/schedules.
std::vector<std::filesystem::path> schedule_preset_dirs();
// --schedule's value: a YAML file, a preset name or the shorthand (schedule::resolve_schedule).
schedule::ComputeSchedule resolve_schedule(const std::string& spec);
// --schedule's value when given, else the model's default schedule (shorthand only, checked on load).
schedule::ComputeSchedule resolve_schedule(const std::optional<std::string>& spec, const ModelInfo& info);

}  // namespace ditgen::cli
