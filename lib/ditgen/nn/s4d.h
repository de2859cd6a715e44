// S4D, the diagonal state-space layer (Gu et al. 2022) in the form BiGS and DiffuSSM use (docs/DIFFUSSM.md):
// a bank of diagonal linear SSMs discretised with zero-order hold and applied as a causal long convolution,
// computed by FFT in fp32. The recurrence it equals is kept as the reference path.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/cuda/dispatch.h"

namespace ditgen::nn {

// Channel c of u runs x_l = Abar x_{l-1} + Bbar u_l, y_l = 2 Re(C x_l) + D_c u_l, with N/2 complex modes
// (their conjugates give the factor 2), A = -exp(log_A_real) + i A_imag, Abar = exp(dt A) and
// Bbar = (exp(dt A) - 1) / A (ZOH with B = 1), dt = exp(log_dt). Equivalently y = K * u + D u with the kernel
// K[l] = 2 Re sum_n C_n Bbar_n Abar_n^l. A kernel is either one per channel or one shared by all (BiGS's
// torch code shares one); D is per channel either way.
class S4DImpl : public torch::nn::Module {
 public:
  // channels C, state_size N (even), shared_kernel: one kernel for all channels.
  S4DImpl(int channels, int state_size, bool shared_kernel);

  // y = K * u + D u by FFT, zero-padded to 2L (no circular wrap) and computed in fp32 whatever u's dtype.
  // Outside autograd the kernel's spectrum is cached per length (built the first time a length runs; kept,
  // since captured CUDA graphs read it) and every length's is rebuilt when the device or a parameter
  // changes. u [B, L, C] -> [B, L, C] in u's dtype
  at::Tensor forward(const at::Tensor& u);
  // The same function by running the recurrence step by step in fp32 (the reference path; slow).
  // u [B, L, C] -> [B, L, C] in u's dtype
  at::Tensor forward_scan(const at::Tensor& u) const;
  // The convolution kernel for length L, fp32 on the parameters' device. -> [H, L], H = 1 or C
  at::Tensor kernel(int64_t length) const;
  // The kernel's real FFT at 2L points on `device` (cached outside autograd, as in forward). -> [H, L + 1]
  at::Tensor spectrum(int64_t length, const c10::Device& device);

  // The lengths whose kernel spectra are cached, and how many spectra were built so far.
  std::vector<int64_t> cached_lengths() const;
  int64_t kernel_builds() const { return cache_.builds; }

  at::Tensor log_dt;      // [H]
  at::Tensor log_A_real;  // [H, N/2]
  at::Tensor A_imag;      // [H, N/2]
  at::Tensor C;           // [H, N/2, 2]: real and imaginary parts
  at::Tensor D;           // [C]: the skip

  // The modes after ZOH, fp32 on the parameters' device.
  struct DiscreteModes {
    at::Tensor dtA;   // [H, N/2] complex: log Abar
    at::Tensor CB;    // [H, N/2] complex: C Bbar
  };
  DiscreteModes discretise() const;

 private:
  struct SpectrumCache {
    std::string key;  // the device and parameter versions the spectra were built from
    std::map<int64_t, at::Tensor> spectra;  // by length
    int64_t builds = 0;
  } cache_;
};
TORCH_MODULE(S4D);

// The bidirectional SSM of BiGS and DiffuSSM, [forward(u) || flip(backward(flip(u)))], from one FFT of u: the
// flipped half is u's correlation with the backward kernel, irfft(U conj(K_b)) (exact with the padding to
// 2L), so no flips are made. With the scan kernel enabled, CUDA inference runs both recurrences in one fused
// chunked scan instead (cuda/s4d_scan_kernels.cu). u [B, L, C] -> [B, L, 2C] in u's dtype
at::Tensor bidirectional_s4d(S4DImpl& forward, S4DImpl& backward, const at::Tensor& u);

// The same by the recurrences, flip -> scan -> flip for the backward half: the scan kernel's reference.
at::Tensor bidirectional_s4d_scan_reference(const S4DImpl& forward, const S4DImpl& backward, const at::Tensor& u);

// The scan kernel's switch and shape check, as cuda/dispatch.h decides them (off by default).
using cuda::s4d_scan_kernel_enabled;
using cuda::set_s4d_scan_kernel_enabled;
// Whether the scan kernel can take u for these modules (cuda::s4d_scan_kernel_supports).
bool s4d_scan_kernel_supports(const S4DImpl& forward, const at::Tensor& u);

}  // namespace ditgen::nn
