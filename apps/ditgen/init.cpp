// `ditgen init`: write a freshly initialised (untrained) model file from a spec or registry name.
#include <cstdio>
#include <memory>
#include <string>

#include <ATen/Context.h>

#include "commands.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/core/device.h"
#include "ditgen/models/model_file.h"

namespace ditgen::cli {

namespace {

struct InitOptions {
  std::string spec, output, dtype = "fp32", weights = "official";
  uint64_t seed = 0;
};

int run_init(const InitOptions& o) {
  require_extension(o.output, ".safetensors", "-o");
  check_run_files({{o.output, "-o"}}, {{o.spec, "the model spec"}});
  const at::ScalarType dtype = parse_dtype(o.dtype);
  ModelInfo info = model_spec(o.spec);
  require_memory_for(info.config, ErrorKind::Usage);
  at::manual_seed(o.seed);
  DiT model(info.config);
  if (o.weights == "official") {
    model->initialize_weights();
  } else if (o.weights == "normal") {
    model->normal_weights(0.02, o.seed);
  } else {
    throw Error(ErrorKind::Usage, "unknown --weights '" + o.weights + "' (use official or normal)");
  }
  info.training = {{"untrained", true}, {"init_seed", o.seed}, {"init", o.weights}};
  save_model(o.output, model, info, dtype);
  std::printf("%s\n", o.output.c_str());
  return 0;
}

}  // namespace

Command add_init_command(CLI::App& root) {
  auto o = std::make_shared<InitOptions>();
  CLI::App* app = root.add_subcommand("init", "Write an untrained model file (the official DiT initialisation) "
                                              "from a YAML spec or a registry name");
  app->add_option("spec", o->spec, "Model spec (YAML, see configs/models) or registry name such as DiT-S/2")
      ->required();
  app->add_option("-o,--output", o->output, "Model file to write (.safetensors)")->required();
  app->add_option("--seed", o->seed, "Initialisation seed")->capture_default_str();
  app->add_option("--dtype", o->dtype, "Weight dtype: fp32, bf16 or fp16")->capture_default_str();
  app->add_option("--weights", o->weights,
                  "official (the DiT initialisation: adaLN and output layers zero) or normal (every weight "
                  "N(0, 0.02): non-trivial random models for benchmarks and parity runs)")
      ->capture_default_str();
  return {app, [o] { return run_init(*o); }};
}

}  // namespace ditgen::cli
