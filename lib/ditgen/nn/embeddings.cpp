#include "ditgen/nn/embeddings.h"

#include <cmath>

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

namespace ditgen::nn {

PatchEmbedImpl::PatchEmbedImpl(int in_channels, int hidden_size, int patch_size) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, hidden_size, patch_size).stride(patch_size)));
}

at::Tensor PatchEmbedImpl::forward(const at::Tensor& x) { return patchify(x, proj->weight, proj->bias); }

at::Tensor patchify(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  // A channels-last input makes the convolution write channels-last, so the tokens come out contiguous:
  // the official flatten-transpose of an NCHW output leaves the whole residual stream transposed in memory,
  // and every later elementwise op strided and slow. Converting the C-channel input is the cheap side.
  const int64_t p = weight.size(-1);
  at::Tensor h = at::conv2d(x.contiguous(at::MemoryFormat::ChannelsLast), weight, bias, {p, p});  // [B, D, H/p, W/p]
  return h.flatten(2).transpose(1, 2).contiguous();                           // [B, N, D], a view when NHWC
}

at::Tensor timestep_frequencies(const at::Tensor& t, int dim) {
  const int half = dim / 2;
  at::Tensor freqs =
      at::exp(-std::log(10000.0) * at::arange(0, half, t.options().dtype(at::kFloat)) / half);  // [half]
  at::Tensor args = t.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);                    // [B, half]
  at::Tensor emb = at::cat({at::cos(args), at::sin(args)}, 1);                              // [B, 2*half]
  if (dim % 2) emb = at::cat({emb, at::zeros_like(emb.narrow(1, 0, 1))}, 1);               // [B, dim]
  return emb;
}

TimestepEmbedderImpl::TimestepEmbedderImpl(int hidden_size, int frequency_size) : frequency_size_(frequency_size) {
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(frequency_size, hidden_size), torch::nn::SiLU(),
                                                      torch::nn::Linear(hidden_size, hidden_size)));
}

at::Tensor TimestepEmbedderImpl::forward(const at::Tensor& t) {
  const auto dtype = mlp->parameters().front().scalar_type();
  at::Tensor freq = timestep_frequencies(t, frequency_size_).to(dtype);  // [B, F]
  return mlp->forward(freq);                                             // [B, D]
}

LabelEmbedderImpl::LabelEmbedderImpl(int num_classes, int hidden_size, bool with_null_class) {
  embedding_table = register_module("embedding_table",
                                    torch::nn::Embedding(num_classes + (with_null_class ? 1 : 0), hidden_size));
}

at::Tensor LabelEmbedderImpl::forward(const at::Tensor& labels) {
  return embedding_table->forward(labels);  // [B] -> [B, D]
}

at::Tensor sincos_pos_embed_2d(int dim, int grid_h, int grid_w, double step) {
  const int quarter = dim / 4;
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor omega = 1.0 / at::pow(10000.0, at::arange(0, quarter, f64) / quarter);  // [D/4]
  auto encode = [&](const at::Tensor& pos) {                                         // [N] -> [N, D/2]
    at::Tensor out = pos.unsqueeze(1) * omega.unsqueeze(0);                           // [N, D/4]
    return at::cat({at::sin(out), at::cos(out)}, 1);                                  // [N, D/2]
  };
  const double offset = (step - 1) / 2;  // 0 on the official grid
  at::Tensor rows = at::arange(0, grid_h, f64).repeat_interleave(grid_w) * step + offset;  // [N] row of token i*gw+j
  at::Tensor cols = at::arange(0, grid_w, f64).repeat({grid_h}) * step + offset;           // [N] column j
  at::Tensor emb = at::cat({encode(cols), encode(rows)}, 1);                // [N, D]
  return emb.to(at::kFloat).unsqueeze(0);                                    // [1, N, D]
}

}  // namespace ditgen::nn
