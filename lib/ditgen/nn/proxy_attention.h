// PT-DiT's proxy-token attention (docs/PTDIT.md): global context through a few proxy tokens (window
// means) plus window and shifted-window attention, for image grids (frames = 1) and video grids.
#pragma once

#include <array>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/nn/attention.h"
#include "ditgen/nn/text_cross_attention.h"
#include "ditgen/nn/mlp.h"

namespace ditgen::nn {

// A token grid of frames x height x width cut into windows of window[0] x window[1] x window[2] tokens
// (t, y, x), each side dividing the grid's.
struct WindowGrid {
  std::array<int64_t, 3> grid;    // F, H, W
  std::array<int64_t, 3> window;  // p_t, p_h, p_w

  int64_t tokens() const { return grid[0] * grid[1] * grid[2]; }
  int64_t windows() const { return tokens() / window_tokens(); }
  int64_t window_tokens() const { return window[0] * window[1] * window[2]; }
  // Swin's shift: half a window on each axis the window does not cover whole (0 where it does).
  std::array<int64_t, 3> shift() const;
};

// Raster tokens to windows: [B, F, H, W, D] -> [B, P, n, D], windows in (f, h, w) order, tokens in (t, y, x)
// order inside each.
at::Tensor window_partition(const at::Tensor& x, const WindowGrid& g);
// The inverse. [B, P, n, D] -> [B, F, H, W, D]
at::Tensor window_merge(const at::Tensor& windows, const WindowGrid& g);
// The cyclic shift of the shifted windows: token (f, y, x) moves to (f - s_t, y - s_h, x - s_w) modulo the
// grid (torch.roll by -shift); `undo` rolls back. [B, F, H, W, D] -> [B, F, H, W, D]
at::Tensor roll_grid(const at::Tensor& x, const WindowGrid& g, bool undo = false);
// Swin's region label of each token of the shifted windows (window_partition's order of the rolled grid):
// per axis [0, G - p), [G - p, G - s), [G - s, G) of the rolled grid, combined in base 3. [P, n] long
at::Tensor shifted_region_labels(const WindowGrid& g, const at::TensorOptions& options);
// Which tokens of a shifted window may attend to each other: those whose places before the roll were
// neighbours, i.e. whose region labels agree. [P, n, n] bool, true = attend.
at::Tensor shifted_window_mask(const WindowGrid& g, const at::TensorOptions& options);

// The token orders a PT-DiT keeps: its residual stream is window-major (window_partition's order), so
// window attention needs no copy and the shifted windows are one gather away. In the shifted order each
// shifted window's tokens are sorted by region (stably), so regions are contiguous and can run as
// variable-length sequences.
struct WindowLayout {
  at::Tensor raster_of_window_token;  // [N] long: the raster index of each window-major position
  at::Tensor window_of_raster_token;  // [N] long: the inverse
  at::Tensor to_shifted;              // [N] long: the window-major position of each shifted-window position
  at::Tensor from_shifted;            // [N] long: the inverse
  WindowRegions shift_regions;        // the shifted windows' regions; no mask when no axis shifts
};
// Built from window_partition, roll_grid and the region labels applied to token indices (on the CPU, then
// copied to `device`).
WindowLayout make_window_layout(const WindowGrid& g, const c10::Device& device);

// x[:, index]: tokens reordered. Without autograd the rows move as 8-byte words where they can (torch's
// gather moves one element at a time, and 2-byte elements run it far below the memory bandwidth).
// x [B, N, D], index [N'] long -> [B, N', D]
at::Tensor gather_tokens(const at::Tensor& x, const at::Tensor& index);

// Attention inside the windows of a window-major stream, from its fused qkv projection: the windows
// themselves, or (shifted) the shifted windows, whose tokens the layout's to_shifted order gathers and whose
// Swin regions attend only within themselves. The output is in the stream's order. The reference gathers the
// rows, runs attention_core and gathers back; where window_attention_runs_kernel says so, one fused kernel
// (cuda/window_attention_kernels.cu) gathers the rows as it loads them and scatters its output as it stores.
// qkv [B, N, 3D] -> [B, N, D]
at::Tensor window_attention(const at::Tensor& qkv, int64_t heads, const WindowGrid& g, const WindowLayout& layout,
                            bool shifted);
at::Tensor window_attention_reference(const at::Tensor& qkv, int64_t heads, const WindowGrid& g,
                                      const WindowLayout& layout, bool shifted);
// Whether window_attention runs the fused kernel for this grid's windows (cuda::window_attention_runs_kernel).
bool window_attention_runs_kernel(const at::Tensor& qkv, int64_t heads, const WindowGrid& g);

// Proxies of a window-major stream: the mean of each of the split x split sub-windows of every window
// (split 1: the window means). [B, N, D] -> [B, P * split^2, D]
at::Tensor proxy_tokens(const at::Tensor& x, const WindowGrid& g, int split);

// PT-DiT's block (class-conditional form; docs/PTDIT.md):
//   GIIM: proxies p = window means; p += SA(LN(p)); x += CA(Q = LN(x), KV = LN(p)) with a zero-initialised
//         output projection (the block starts without global mixing);
//   TCM:  x += g1 WSA(mod1(LN(x))); x += g2 SWSA(mod2(LN(x))) (Swin mask);
//   text: x += CA(Q = x, KV = text) (text models; zero-initialised output);
//   MLP:  x += g3 MLP(mod3(LN(x))).
// Conditioning is adaLN-single (PixArt-alpha, the released code's form): the model computes one 9D vector
// from SiLU(c) for all blocks and each block adds its own learned table; or (own_adaln) each block has its own
// head, as a dense DiT block does, whose output the model passes in place of the shared one. x is window-major.
class ProxyTokenBlockImpl : public torch::nn::Module {
 public:
  // with_text: text cross-attention after the shifted windows, before the MLP (the released block's place).
  ProxyTokenBlockImpl(int hidden_size, int num_heads, int mlp_hidden, bool with_text = false, bool own_adaln = false);
  // x [B, N, D] window-major, shared_mod [B, 9D] (the model's adaLN-single output, or this block's own head's),
  // text [B, L, D] -> [B, N, D]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& shared_mod, const WindowGrid& g, const WindowLayout& layout,
                     int proxy_split, const TextTokens& text = {});

  Attention proxy_attn{nullptr};      // self-attention of the proxies
  CrossAttention proxy_cross{nullptr};  // every token to the proxies; proj zero-initialised
  Attention window_attn{nullptr};
  Attention shifted_attn{nullptr};
  CrossAttention text_cross{nullptr};  // text models only
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};  // own_adaln only: SiLU, Linear(D -> 9D)
  at::Tensor scale_shift_table;       // [9, D]: shift, scale, gate of WSA, SWSA, MLP added to the shared vector
};
TORCH_MODULE(ProxyTokenBlock);

}  // namespace ditgen::nn
