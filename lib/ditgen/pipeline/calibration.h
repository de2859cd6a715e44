// Static activation calibration on the model's own samples (docs/QUANT.md, "Static activations"): after
// quant::quantize_model with static activations every quantized layer observes its inputs; this generates
// images with the model's sampler defaults (every step and both guidance branches, so the inputs of every
// timestep are seen), then finishes each layer's quantizer.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "ditgen/models/model_file.h"

namespace ditgen {

struct CalibrationOptions {
  int images = 16;      // generations observed: text models take the benchmark prompts spread evenly, class models
                        // the classes in turn
  int batch_size = 16;  // images a forward
  uint64_t seed = 0;    // image i's seed is seed + i
};

// Error(Usage) for fewer than 1 image or a model whose layers are not calibrating (quant::finish_static_calibration).
void calibrate_static_activations(LoadedModel& model, const CalibrationOptions& options, const at::Device& device);

}  // namespace ditgen
