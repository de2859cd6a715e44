#include "ditgen/vae/vae_file.h"

#include "ditgen/core/device.h"
#include "ditgen/core/hash.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/tensor_io.h"

namespace ditgen::vae {

namespace {

// diffusers' names for the mid-block attention before its Attention class (files from 2022, such as the
// published sd-vae-ft-* safetensors): current name part -> older one.
const std::vector<std::pair<std::string, std::string>> kLegacyAttentionNames = {
    {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};

// The file's tensor for a parameter name: under that name, or the attention's older name. nullptr if neither.
const io::TensorView* find_parameter(const io::SafetensorsFile& file, const std::string& name) {
  if (const io::TensorView* view = file.find(name)) return view;
  for (const auto& [current, legacy] : kLegacyAttentionNames)
    if (const auto at = name.find(current); at != std::string::npos)
      return file.find(name.substr(0, at) + legacy + name.substr(at + current.size()));
  return nullptr;
}

// Original (ldm / CompVis) names that diffusers' layout does not use.
bool ldm_layout(const io::SafetensorsFile& file) {
  for (const io::TensorView& view : file.tensors())
    if (view.name.rfind("first_stage_model.", 0) == 0 || view.name.rfind("decoder.mid.", 0) == 0 ||
        view.name.rfind("decoder.up.", 0) == 0)
      return true;
  return false;
}

// Reads a config off the tensor shapes: blocks and their widths from the decoder's up blocks, layers from the
// first up block's resnets, latent and image channels from the convs at either end.
VaeConfig config_from_shapes(const io::SafetensorsFile& file, const std::string& where) {
  auto dim = [&](const std::string& name, size_t axis) -> int {
    const io::TensorView* view = find_parameter(file, name);
    if (!view) throw Error(ErrorKind::Model, where + ": not a diffusers AutoencoderKL: missing tensor '" + name + "'");
    if (view->shape.size() <= axis || view->shape[axis] > (1 << 20))
      throw Error(ErrorKind::Model, where + ": tensor '" + name + "' has shape " + c10::str(at::IntArrayRef(view->shape)) +
                                        ", not a convolution's");
    return static_cast<int>(view->shape[axis]);
  };
  auto has = [&](const std::string& name) { return find_parameter(file, name) != nullptr; };
  VaeConfig c;
  const std::string up = "decoder.up_blocks.";
  int blocks = 0;
  while (blocks <= 8 && has(up + std::to_string(blocks) + ".resnets.0.conv1.weight")) ++blocks;
  if (blocks == 0) dim(up + "0.resnets.0.conv1.weight", 0);  // names the missing tensor
  c.block_out_channels.assign(blocks, 0);
  for (int i = 0; i < blocks; ++i)
    c.block_out_channels[blocks - 1 - i] = dim(up + std::to_string(i) + ".resnets.0.conv1.weight", 0);
  int resnets = 0;
  while (resnets <= 10 && has(up + "0.resnets." + std::to_string(resnets) + ".conv1.weight")) ++resnets;
  c.layers_per_block = resnets - 1;
  c.latent_channels = dim("decoder.conv_in.weight", 1);
  c.out_channels = dim("decoder.conv_out.weight", 0);
  c.encoder = has("encoder.conv_in.weight");
  if (c.encoder) c.in_channels = dim("encoder.conv_in.weight", 1);
  c.mid_block_attention = has("decoder.mid_block.attentions.0.to_q.weight");
  c.quant_conv = has("quant_conv.weight");
  c.post_quant_conv = has("post_quant_conv.weight");
  return c;
}

}  // namespace

VaeInfo vae_info_from_file(const io::SafetensorsFile& file) {
  const std::string where = file.path().string();
  if (ldm_layout(file))
    throw Error(ErrorKind::Model, where + ": the original (ldm) VAE layout; convert it with "
                                          "scripts/convert_vae_checkpoint.py");
  VaeInfo info;
  info.path = file.path();
  const auto meta = file.metadata().find(kVaeConfigKey);
  try {
    if (meta != file.metadata().end()) {
      const nlohmann::json j = io::parse_json(meta->second, ErrorKind::Model, kVaeConfigKey);
      info.config = vae_config_from_json(j);
      for (const char* key : {"norm_num_groups", "scaling_factor"})
        if (!j.contains(key)) info.defaulted.push_back(key);
    } else {
      info.config = config_from_shapes(file, where);
      info.config.validate();
      info.defaulted = {"norm_num_groups", "scaling_factor"};
    }
  } catch (const Error& e) {
    const std::string message = e.what();
    throw Error(ErrorKind::Model, message.rfind(where, 0) == 0 ? message : where + ": " + message);
  }
  return info;
}

VaeInfo read_vae_info(const std::filesystem::path& path) {
  VaeInfo info = vae_info_from_file(io::SafetensorsFile::open(path, ErrorKind::Model));
  info.sha256 = sha256_hex(path);
  return info;
}

LoadedVae load_vae(const std::filesystem::path& path, const at::Device& device, at::ScalarType dtype) {
  const std::string where = path.string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(ErrorKind::Model, "VAE file not found: " + where);
  const io::SafetensorsFile file = io::SafetensorsFile::open(path, ErrorKind::Model);
  LoadedVae loaded;
  loaded.info = vae_info_from_file(file);
  loaded.info.sha256 = sha256_hex(path);
  io::require_parameter_bytes(file, vae_parameter_count(loaded.info.config));
  loaded.model = AutoencoderKL(loaded.info.config);
  io::load_parameters(*loaded.model, file, [&](const std::string& name) { return find_parameter(file, name); },
                      [](const std::string&) { return false; });
  keep_fp32_exact(dtype);
  loaded.model->to(device, dtype);
  loaded.model->eval();
  return loaded;
}

void save_vae(const std::filesystem::path& path, AutoencoderKL& vae, at::ScalarType dtype) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : vae->named_parameters()) tensors.emplace_back(item.key(), item.value().detach().to(dtype));
  io::save_tensors(path, tensors, {{kVaeConfigKey, to_json(vae->config()).dump()}});
}

}  // namespace ditgen::vae
