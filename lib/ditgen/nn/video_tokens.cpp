#include "ditgen/nn/video_tokens.h"

#include <c10/util/Exception.h>

namespace ditgen::nn {

at::Tensor frames_as_batch(const at::Tensor& clip) {
  TORCH_CHECK(clip.dim() == 5, "a clip is [B, C, F, H, W], got ", clip.sizes());
  const int64_t B = clip.size(0), C = clip.size(1), F = clip.size(2), H = clip.size(3), W = clip.size(4);
  return clip.transpose(1, 2)              // [B, F, C, H, W]
      .reshape({B * F, C, H, W});          // [B * F, C, H, W]
}

at::Tensor batch_as_frames(const at::Tensor& images, int64_t frames) {
  TORCH_CHECK(images.dim() == 4 && frames >= 1 && images.size(0) % frames == 0, "cannot read ", images.sizes(),
              " as clips of ", frames, " frames");
  const int64_t B = images.size(0) / frames;
  return images.reshape({B, frames, images.size(1), images.size(2), images.size(3)})  // [B, F, C, H, W]
      .transpose(1, 2);                                                              // [B, C, F, H, W]
}

at::Tensor temporal_pos_embed(int dim, int64_t frames) {
  TORCH_CHECK(dim % 2 == 0 && frames >= 1, "temporal positions need an even width and at least one frame");
  const int half = dim / 2;
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor omega = 1.0 / at::pow(10000.0, at::arange(0, half, f64) / half);  // [D/2]
  at::Tensor angle = at::arange(0, frames, f64).unsqueeze(1) * omega;          // [F, D/2]
  at::Tensor emb = at::cat({at::sin(angle), at::cos(angle)}, 1);              // [F, D]
  return (emb - emb[0]).to(at::kFloat);                                       // [F, D], row 0 zero
}

}  // namespace ditgen::nn
