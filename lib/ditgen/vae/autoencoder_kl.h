// The Stable Diffusion VAE (AutoencoderKL): the decoder that turns a latent DiT's 4-channel latents into RGB
// images, and the encoder that turns images into latents. Submodule names are diffusers' AutoencoderKL
// state-dict names (encoder.down_blocks.N.resnets.M.conv1, decoder.mid_block.attentions.0.to_q, ...), so a
// diffusers .safetensors loads by name (docs/VAE.md).
#pragma once

#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>

namespace ditgen::vae {

// An AutoencoderKL's shape and its latent scaling. The defaults are the SD-VAE's (sd-vae-ft-ema / -mse, the
// VAE of the official DiT checkpoints).
struct VaeConfig {
  std::vector<int> block_out_channels{128, 256, 512, 512};  // encoder order; the decoder runs them reversed
  int layers_per_block = 2;        // resnets per encoder block (the decoder's blocks have one more)
  int latent_channels = 4;
  int in_channels = 3;             // image channels the encoder takes
  int out_channels = 3;            // image channels the decoder makes
  int norm_num_groups = 32;        // GroupNorm groups everywhere (eps 1e-6)
  double scaling_factor = 0.18215; // diffusion latents = VAE latents x scaling_factor (after - shift_factor)
  double shift_factor = 0.0;
  bool mid_block_attention = true; // the mid blocks' single-head self-attention
  bool quant_conv = true;          // 1x1 conv after the encoder
  bool post_quant_conv = true;     // 1x1 conv before the decoder
  bool encoder = true;             // the encoder half is present (a decoder-only file has none)

  // Image pixels per latent along each side: 2^(blocks - 1), 8 for the SD-VAE.
  int upscale() const { return 1 << (static_cast<int>(block_out_channels.size()) - 1); }
  // Error(Model) naming the field unless every value is in range (bounded before anything is allocated).
  void validate() const;
};

nlohmann::json to_json(const VaeConfig& config);
// Reads the fields present over the defaults; Error(Model) for wrong types or values out of range.
VaeConfig vae_config_from_json(const nlohmann::json& j);
// Parameters an AutoencoderKL of this config holds (analytic: no allocation).
int64_t vae_parameter_count(const VaeConfig& config);

// GroupNorm, SiLU, conv 3x3, GroupNorm, SiLU, conv 3x3, plus the input (through a 1x1 conv_shortcut when the
// channel count changes): diffusers' ResnetBlock2D without a time embedding.
class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  ResnetBlock2DImpl(int in_channels, int out_channels, int groups);
  at::Tensor forward(const at::Tensor& x);  // [B, in, H, W] -> [B, out, H, W]

  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
};
TORCH_MODULE(ResnetBlock2D);

// Single-head self-attention over all positions, GroupNorm before, residual after (the mid block's).
class SpatialAttentionImpl : public torch::nn::Module {
 public:
  SpatialAttentionImpl(int channels, int groups);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> [B, C, H, W]

  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [0]: the output Linear (diffusers keeps a dropout at [1])
};
TORCH_MODULE(SpatialAttention);

// Resnet, attention, resnet at the lowest resolution.
class MidBlockImpl : public torch::nn::Module {
 public:
  MidBlockImpl(int channels, int groups, bool attention);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> [B, C, H, W]

  torch::nn::ModuleList attentions{nullptr}, resnets{nullptr};
};
TORCH_MODULE(MidBlock);

enum class Resample { None, Down, Up };

// A conv that halves the size (zero pad right and bottom by one, 3x3 stride 2) or doubles it (nearest x2,
// then 3x3): diffusers' Downsample2D / Upsample2D with their conv.
class ResampleConvImpl : public torch::nn::Module {
 public:
  ResampleConvImpl(int channels, Resample direction);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> [B, C, H/2, W/2] or [B, C, 2H, 2W]

  torch::nn::Conv2d conv{nullptr};

 private:
  Resample direction_;
};
TORCH_MODULE(ResampleConv);

// `layers` resnets (the first changes in -> out channels), then an optional resampling conv:
// DownEncoderBlock2D ("downsamplers") or UpDecoderBlock2D ("upsamplers").
class ResnetStackImpl : public torch::nn::Module {
 public:
  ResnetStackImpl(int in_channels, int out_channels, int layers, int groups, Resample resample);
  at::Tensor forward(const at::Tensor& x);  // [B, in, H, W] -> [B, out, H', W']

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList resamplers{nullptr};  // registered as downsamplers or upsamplers; empty for None
};
TORCH_MODULE(ResnetStack);

class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& x);  // [B, in, H, W] -> [B, 2 latent, H/s, W/s] (mean and log-variance)

  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(Encoder);

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& z);  // [B, latent, h, w] -> [B, out, h s, w s]

  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  MidBlock mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(Decoder);

// The encoder's diagonal Gaussian over latents (unscaled VAE latents, as diffusers' latent_dist).
struct LatentDistribution {
  at::Tensor mean;    // [B, latent, h, w]
  at::Tensor logvar;  // [B, latent, h, w], clamped to [-30, 20] as diffusers does
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VaeConfig& config);

  const VaeConfig& config() const { return config_; }

  // diffusers' AutoencoderKL.decode(z).sample: post_quant_conv, decoder; no scaling, no clamp.
  at::Tensor decode(const at::Tensor& z);  // [B, latent, h, w] -> [B, out, h s, w s]
  // diffusers' encode(x).latent_dist: encoder, quant_conv, split. Error(Usage) for a decoder-only model.
  LatentDistribution encode(const at::Tensor& images);  // [B, in, H, W] in [-1, 1]

  // What a latent DiT makes, as images: decode(latents / scaling_factor + shift_factor) clamped to [-1, 1].
  at::Tensor decode_latents(const at::Tensor& latents);  // [B, latent, h, w] -> [B, out, h s, w s]
  // Images as a latent DiT's latents: (mean - shift_factor) x scaling_factor (the distribution's mean, as
  // for reproducible img2img). [B, in, H, W] -> [B, latent, H/s, W/s]
  at::Tensor encode_latents(const at::Tensor& images);

  Encoder encoder{nullptr};  // absent in a decoder-only model
  Decoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  VaeConfig config_;
};
TORCH_MODULE(AutoencoderKL);

}  // namespace ditgen::vae
