// What a run writes: output names from a template, images from frames, and the metadata PNGs carry.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/io/png.h"
#include "ditgen/pipeline/generator.h"

namespace ditgen {

// Fields an output-name template may use: {index} (or {index:N}, zero-padded to N digits), {seed},
// {prompt} (lowercased, characters other than a-z 0-9 - _ replaced by '_', at most 48), {class} (the id).
struct OutputFields {
  int64_t index = 0;
  uint64_t seed = 0;
  std::string prompt;
  int64_t class_id = 0;
};

// Expands a template. When the template names neither {index} nor {seed} and the run makes several
// images, "-{index}" is added before the extension so names never collide. Throws Error(Usage) for an
// unknown or unterminated placeholder, or a name that would leave the template's folder ("..").
std::filesystem::path expand_output_name(const std::string& name_template, const OutputFields& fields,
                                         bool several_outputs);

// A frame in [-1, 1] ([C, H, W] float) as 8-bit pixels (grey for 1 channel, RGB for 3).
// Throws Error(Usage) for other channel counts (latents need a VAE).
io::Image to_image(const at::Tensor& frame);

// Tiles frames [N, C, H, W] into one image, `columns` per row, with a 1-pixel gap.
io::Image tile_images(const at::Tensor& frames, int columns);

// The full record of one image: request, model, version; what `--from` will replay.
// `negative` is the negative prompt as resolved ("" for the null condition); dtype as dtype_label gives it;
// the GFLOPs of each denoising step (Generator::step_gflops) and their total go in too.
nlohmann::json generation_record(const ModelInfo& model, const GenerationRequest& request, size_t image,
                                 const std::string& prompt, const std::string& negative, const std::string& device,
                                 const std::string& dtype, const std::vector<double>& gflops_per_step);

// Whether an existing image's record describes the same output: same model, prompt, seed, sampling and size.
bool same_output(const nlohmann::json& record, const nlohmann::json& wanted);

// The "ditgen" record embedded in a PNG. Error(Input) when the file is not a PNG ditgen wrote.
nlohmann::json read_generation_record(const std::filesystem::path& png);

// PNG text chunks for an image: A1111-style "parameters" and "ditgen" (the JSON record).
std::vector<io::PngText> png_metadata(const nlohmann::json& record);

}  // namespace ditgen
