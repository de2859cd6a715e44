// Calibration runs: generations whose only product is what the quantized layers observe.
#include "ditgen/pipeline/calibration.h"

#include "ditgen/data/moving_captions.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/quant/quantize_model.h"

namespace ditgen {

void calibrate_static_activations(LoadedModel& model, const CalibrationOptions& o, const at::Device& device) {
  if (o.images < 1 || o.batch_size < 1) throw Error(ErrorKind::Usage, "calibration needs at least 1 image a batch");
  const DiTConfig& c = model.info.config;
  const SamplerDefaults& d = model.info.sampler_defaults;
  GenerationRequest request;
  request.sampler = {d.sampler, d.steps, 0.0};
  request.guidance = {d.cfg_scale, d.cfg_channels};
  request.batch_size = o.batch_size;
  if (c.text.enabled()) {
    const std::vector<std::string> prompts = c.video() ? data::moving_benchmark_prompts() : data::benchmark_prompts();
    for (int i = 0; i < o.images; ++i) request.prompts.push_back(prompts[i * prompts.size() / o.images]);
  } else {
    for (int i = 0; i < o.images; ++i) request.labels.push_back(i % c.num_classes);
  }
  for (int i = 0; i < o.images; ++i) request.seeds.push_back(o.seed + static_cast<uint64_t>(i));
  Generator generator(model, device, at::kFloat);  // shares the model's layers
  generator.set_cuda_graphs(false);                 // the observers read their inputs back on the host
  generator.generate(request);
  quant::finish_static_calibration(model.model);
}

}  // namespace ditgen
