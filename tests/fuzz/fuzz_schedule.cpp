// Compute schedules: any shorthand string parses or is refused with ditgen::Error; a parsed schedule prints
// a canonical text that parses back to itself and plans every step with a valid patch size. The same bytes
// as a YAML preset load or are refused the same way.
#include <string>

#include "ditgen/core/error.h"
#include "ditgen/schedule/compute_schedule.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const schedule::ComputeSchedule s = schedule::ComputeSchedule::parse(text);
    if (schedule::ComputeSchedule::parse(s.text()).text() != s.text()) __builtin_trap();  // canonical round trip
    for (int steps : {1, 7, 50})
      for (int k = 0; k < steps; ++k) {
        const schedule::StepPlan p = s.plan(k, steps, DiTConfig{}, true);
        if (p.cond_patch < 1 || p.cond_patch > 16 || p.guide_patch < 1 || p.guide_patch > 16) __builtin_trap();
      }
  } catch (const Error&) {
  }
  try {
    schedule::ComputeSchedule::load_yaml(fuzz::write_scratch(data, size));
  } catch (const Error&) {
  }
  return 0;
}
