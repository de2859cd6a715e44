#include "ditgen/vae/autoencoder_kl.h"

#include <cmath>
#include <string>

#include <torch/nn/modules/linear.h>

#include "ditgen/core/error.h"

namespace ditgen::vae {

namespace {

constexpr double kNormEps = 1e-6;  // every GroupNorm of the SD-VAE
constexpr int kMaxBlocks = 6;
constexpr int kMaxChannels = 4096;
constexpr int kMaxLayers = 8;
constexpr int kMaxLatentChannels = 64;
constexpr int kMaxImageChannels = 4;

torch::nn::GroupNorm group_norm(int groups, int channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kNormEps));
}

torch::nn::Conv2d conv(int in, int out, int kernel, int stride = 1, int padding = -1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding < 0 ? kernel / 2 : padding));
}

// Weights plus bias of a conv.
int64_t conv_parameters(int64_t in, int64_t out, int64_t kernel) { return out * in * kernel * kernel + out; }

int64_t resnet_parameters(int64_t in, int64_t out) {
  return 2 * in + conv_parameters(in, out, 3) + 2 * out + conv_parameters(out, out, 3) +
         (in != out ? conv_parameters(in, out, 1) : 0);
}

int64_t mid_block_parameters(int64_t c, bool attention) {
  return 2 * resnet_parameters(c, c) + (attention ? 2 * c + 4 * (c * c + c) : 0);
}

}  // namespace

void VaeConfig::validate() const {
  auto fail = [](const std::string& what) { throw Error(ErrorKind::Model, "VAE config: " + what); };
  const int blocks = static_cast<int>(block_out_channels.size());
  if (blocks < 1 || blocks > kMaxBlocks) fail("block_out_channels needs 1.." + std::to_string(kMaxBlocks) + " entries");
  if (norm_num_groups < 1 || norm_num_groups > kMaxChannels) fail("norm_num_groups must be in 1..4096");
  for (int c : block_out_channels)
    if (c < 1 || c > kMaxChannels || c % norm_num_groups)
      fail("block_out_channels " + std::to_string(c) + " must be in 1..4096 and divisible by norm_num_groups " +
           std::to_string(norm_num_groups));
  if (layers_per_block < 1 || layers_per_block > kMaxLayers) fail("layers_per_block must be in 1..8");
  if (latent_channels < 1 || latent_channels > kMaxLatentChannels) fail("latent_channels must be in 1..64");
  if (in_channels < 1 || in_channels > kMaxImageChannels || out_channels < 1 || out_channels > kMaxImageChannels)
    fail("in_channels and out_channels must be in 1..4");
  if (!std::isfinite(scaling_factor) || scaling_factor <= 0) fail("scaling_factor must be a positive number");
  if (!std::isfinite(shift_factor)) fail("shift_factor must be a finite number");
  if (quant_conv && !encoder) fail("quant_conv belongs to the encoder, which this VAE has not");
}

nlohmann::json to_json(const VaeConfig& c) {
  return {{"block_out_channels", c.block_out_channels},
          {"layers_per_block", c.layers_per_block},
          {"latent_channels", c.latent_channels},
          {"in_channels", c.in_channels},
          {"out_channels", c.out_channels},
          {"norm_num_groups", c.norm_num_groups},
          {"scaling_factor", c.scaling_factor},
          {"shift_factor", c.shift_factor},
          {"mid_block_add_attention", c.mid_block_attention},
          {"use_quant_conv", c.quant_conv},
          {"use_post_quant_conv", c.post_quant_conv},
          {"encoder", c.encoder}};
}

VaeConfig vae_config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error(ErrorKind::Model, "VAE config: not a JSON object");
  VaeConfig c;
  try {
    c.block_out_channels = j.value("block_out_channels", c.block_out_channels);
    c.layers_per_block = j.value("layers_per_block", c.layers_per_block);
    c.latent_channels = j.value("latent_channels", c.latent_channels);
    c.in_channels = j.value("in_channels", c.in_channels);
    c.out_channels = j.value("out_channels", c.out_channels);
    c.norm_num_groups = j.value("norm_num_groups", c.norm_num_groups);
    c.scaling_factor = j.value("scaling_factor", c.scaling_factor);
    // diffusers writes null for "no shift"
    if (j.contains("shift_factor") && !j["shift_factor"].is_null()) c.shift_factor = j["shift_factor"].get<double>();
    c.mid_block_attention = j.value("mid_block_add_attention", c.mid_block_attention);
    c.quant_conv = j.value("use_quant_conv", c.quant_conv);
    c.post_quant_conv = j.value("use_post_quant_conv", c.post_quant_conv);
    c.encoder = j.value("encoder", c.encoder);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Model, std::string("VAE config: ") + e.what());
  }
  c.validate();
  return c;
}

int64_t vae_parameter_count(const VaeConfig& c) {
  const std::vector<int>& b = c.block_out_channels;
  const int64_t n = static_cast<int64_t>(b.size()), L = c.latent_channels, top = b.back();
  int64_t count = conv_parameters(L, top, 3) + mid_block_parameters(top, c.mid_block_attention) + 2 * b.front() +
                  conv_parameters(b.front(), c.out_channels, 3) + (c.post_quant_conv ? conv_parameters(L, L, 1) : 0);
  for (int64_t i = 0, previous = top; i < n; ++i) {  // decoder blocks, widest first
    const int64_t out = b[n - 1 - i];
    count += resnet_parameters(previous, out) + c.layers_per_block * resnet_parameters(out, out) +
             (i + 1 < n ? conv_parameters(out, out, 3) : 0);
    previous = out;
  }
  if (!c.encoder) return count;
  count += conv_parameters(c.in_channels, b.front(), 3) + mid_block_parameters(top, c.mid_block_attention) + 2 * top +
           conv_parameters(top, 2 * L, 3) + (c.quant_conv ? conv_parameters(2 * L, 2 * L, 1) : 0);
  for (int64_t i = 0, previous = b.front(); i < n; ++i) {
    count += resnet_parameters(previous, b[i]) + (c.layers_per_block - 1) * resnet_parameters(b[i], b[i]) +
             (i + 1 < n ? conv_parameters(b[i], b[i], 3) : 0);
    previous = b[i];
  }
  return count;
}

ResnetBlock2DImpl::ResnetBlock2DImpl(int in_channels, int out_channels, int groups) {
  norm1 = register_module("norm1", group_norm(groups, in_channels));
  conv1 = register_module("conv1", conv(in_channels, out_channels, 3));
  norm2 = register_module("norm2", group_norm(groups, out_channels));
  conv2 = register_module("conv2", conv(out_channels, out_channels, 3));
  if (in_channels != out_channels) conv_shortcut = register_module("conv_shortcut", conv(in_channels, out_channels, 1));
}

at::Tensor ResnetBlock2DImpl::forward(const at::Tensor& x) {
  at::Tensor h = conv1->forward(at::silu(norm1->forward(x)));  // [B, out, H, W]
  h = conv2->forward(at::silu(norm2->forward(h)));             // [B, out, H, W]
  return (conv_shortcut ? conv_shortcut->forward(x) : x) + h;  // [B, out, H, W]
}

SpatialAttentionImpl::SpatialAttentionImpl(int channels, int groups) {
  group_norm = register_module("group_norm", vae::group_norm(groups, channels));
  to_q = register_module("to_q", torch::nn::Linear(channels, channels));
  to_k = register_module("to_k", torch::nn::Linear(channels, channels));
  to_v = register_module("to_v", torch::nn::Linear(channels, channels));
  to_out = register_module("to_out", torch::nn::ModuleList(torch::nn::Linear(channels, channels)));
}

at::Tensor SpatialAttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const at::Tensor tokens = group_norm->forward(x).flatten(2).transpose(1, 2);  // [B, HW, C]
  // One head of width C: [B, 1, HW, C] each.
  const at::Tensor q = to_q->forward(tokens).unsqueeze(1), k = to_k->forward(tokens).unsqueeze(1),
                   v = to_v->forward(tokens).unsqueeze(1);
  const at::Tensor o = at::scaled_dot_product_attention(q, k, v).squeeze(1);  // [B, HW, C]
  const at::Tensor out = to_out[0]->as<torch::nn::Linear>()->forward(o);       // [B, HW, C]
  return x + out.transpose(1, 2).reshape({B, C, H, W});                        // [B, C, H, W]
}

MidBlockImpl::MidBlockImpl(int channels, int groups, bool attention) {
  attentions = register_module("attentions", torch::nn::ModuleList());
  if (attention) attentions->push_back(SpatialAttention(channels, groups));
  resnets = register_module("resnets", torch::nn::ModuleList(ResnetBlock2D(channels, channels, groups),
                                                              ResnetBlock2D(channels, channels, groups)));
}

at::Tensor MidBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = resnets[0]->as<ResnetBlock2D>()->forward(x);                 // [B, C, H, W]
  if (!attentions->is_empty()) h = attentions[0]->as<SpatialAttention>()->forward(h);  // [B, C, H, W]
  return resnets[1]->as<ResnetBlock2D>()->forward(h);                         // [B, C, H, W]
}

ResampleConvImpl::ResampleConvImpl(int channels, Resample direction) : direction_(direction) {
  conv = register_module("conv", direction == Resample::Down ? vae::conv(channels, channels, 3, 2, 0)
                                                             : vae::conv(channels, channels, 3));
}

at::Tensor ResampleConvImpl::forward(const at::Tensor& x) {
  if (direction_ == Resample::Down)  // the asymmetric pad of the original ldm code, kept by diffusers
    return conv->forward(at::constant_pad_nd(x, {0, 1, 0, 1}));  // [B, C, H/2, W/2]
  return conv->forward(at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}));  // [B, C, 2H, 2W]
}

ResnetStackImpl::ResnetStackImpl(int in_channels, int out_channels, int layers, int groups, Resample resample) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  for (int i = 0; i < layers; ++i) resnets->push_back(ResnetBlock2D(i ? out_channels : in_channels, out_channels, groups));
  resamplers = torch::nn::ModuleList();
  if (resample == Resample::None) return;
  resamplers->push_back(ResampleConv(out_channels, resample));
  register_module(resample == Resample::Down ? "downsamplers" : "upsamplers", resamplers);
}

at::Tensor ResnetStackImpl::forward(const at::Tensor& x) {
  at::Tensor h = x;
  for (const auto& resnet : *resnets) h = resnet->as<ResnetBlock2D>()->forward(h);  // [B, out, H, W]
  for (const auto& resample : *resamplers) h = resample->as<ResampleConv>()->forward(h);  // [B, out, H', W']
  return h;
}

EncoderImpl::EncoderImpl(const VaeConfig& c) {
  const std::vector<int>& b = c.block_out_channels;
  const int n = static_cast<int>(b.size()), G = c.norm_num_groups;
  conv_in = register_module("conv_in", conv(c.in_channels, b.front(), 3));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  for (int i = 0; i < n; ++i)
    down_blocks->push_back(ResnetStack(i ? b[i - 1] : b.front(), b[i], c.layers_per_block, G,
                                       i + 1 < n ? Resample::Down : Resample::None));
  mid_block = register_module("mid_block", MidBlock(b.back(), G, c.mid_block_attention));
  conv_norm_out = register_module("conv_norm_out", group_norm(G, b.back()));
  conv_out = register_module("conv_out", conv(b.back(), 2 * c.latent_channels, 3));
}

at::Tensor EncoderImpl::forward(const at::Tensor& x) {
  at::Tensor h = conv_in->forward(x);                                       // [B, b0, H, W]
  for (const auto& block : *down_blocks) h = block->as<ResnetStack>()->forward(h);  // [B, top, H/s, W/s]
  h = mid_block->forward(h);                                                // [B, top, H/s, W/s]
  return conv_out->forward(at::silu(conv_norm_out->forward(h)));           // [B, 2 latent, H/s, W/s]
}

DecoderImpl::DecoderImpl(const VaeConfig& c) {
  const std::vector<int>& b = c.block_out_channels;
  const int n = static_cast<int>(b.size()), G = c.norm_num_groups;
  conv_in = register_module("conv_in", conv(c.latent_channels, b.back(), 3));
  mid_block = register_module("mid_block", MidBlock(b.back(), G, c.mid_block_attention));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  for (int i = 0, previous = b.back(); i < n; ++i) {
    const int out = b[n - 1 - i];
    up_blocks->push_back(ResnetStack(previous, out, c.layers_per_block + 1, G, i + 1 < n ? Resample::Up : Resample::None));
    previous = out;
  }
  conv_norm_out = register_module("conv_norm_out", group_norm(G, b.front()));
  conv_out = register_module("conv_out", conv(b.front(), c.out_channels, 3));
}

at::Tensor DecoderImpl::forward(const at::Tensor& z) {
  at::Tensor h = mid_block->forward(conv_in->forward(z));                  // [B, top, h, w]
  for (const auto& block : *up_blocks) h = block->as<ResnetStack>()->forward(h);  // [B, b0, h s, w s]
  return conv_out->forward(at::silu(conv_norm_out->forward(h)));           // [B, out, h s, w s]
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& config) : config_(config) {
  config_.validate();
  const int L = config_.latent_channels;
  if (config_.encoder) encoder = register_module("encoder", Encoder(config_));
  decoder = register_module("decoder", Decoder(config_));
  if (config_.quant_conv) quant_conv = register_module("quant_conv", conv(2 * L, 2 * L, 1));
  if (config_.post_quant_conv) post_quant_conv = register_module("post_quant_conv", conv(L, L, 1));
}

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& z) {
  return decoder->forward(post_quant_conv ? post_quant_conv->forward(z) : z);  // [B, out, h s, w s]
}

LatentDistribution AutoencoderKLImpl::encode(const at::Tensor& images) {
  if (!encoder) throw Error(ErrorKind::Usage, "this VAE has no encoder (a decoder-only file)");
  at::Tensor moments = encoder->forward(images);                  // [B, 2 latent, h, w]
  if (quant_conv) moments = quant_conv->forward(moments);         // [B, 2 latent, h, w]
  const auto halves = moments.chunk(2, 1);                        // 2 x [B, latent, h, w]
  return {halves[0], halves[1].clamp(-30.0, 20.0)};
}

at::Tensor AutoencoderKLImpl::decode_latents(const at::Tensor& latents) {
  const at::Tensor z = latents / config_.scaling_factor + config_.shift_factor;  // [B, latent, h, w]
  return decode(z).clamp(-1.0, 1.0);                                             // [B, out, h s, w s]
}

at::Tensor AutoencoderKLImpl::encode_latents(const at::Tensor& images) {
  return (encode(images).mean - config_.shift_factor) * config_.scaling_factor;  // [B, latent, h, w]
}

}  // namespace ditgen::vae
