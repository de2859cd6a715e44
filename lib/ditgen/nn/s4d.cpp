#include "ditgen/nn/s4d.h"

#include <cmath>

#include <ATen/ops/fft_irfft.h>
#include <ATen/ops/fft_rfft.h>
#include <ATen/ops/view_as_complex.h>
#include <c10/core/GradMode.h>
#include <c10/util/StringUtil.h>

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ditgen/cuda/s4d_scan_kernels.h"
#endif

namespace ditgen::nn {

S4DImpl::S4DImpl(int channels, int state_size, bool shared_kernel) {
  TORCH_CHECK(channels >= 1 && state_size >= 2 && state_size % 2 == 0, "S4D needs channels >= 1 and an even state size");
  const int64_t H = shared_kernel ? 1 : channels, modes = state_size / 2;
  at::NoGradGuard no_grad;
  // BiGS's initialisation: dt log-uniform in [0.01, 1], A_n = -1/2 + i pi n (S4D-Lin), C complex normal
  // (variance 1/2 each part), D standard normal.
  log_dt = register_parameter("log_dt", at::rand({H}) * (std::log(1.0) - std::log(0.01)) + std::log(0.01));
  log_A_real = register_parameter("log_A_real", at::full({H, modes}, std::log(0.5)));
  A_imag = register_parameter("A_imag", (M_PI * at::arange(modes, at::kFloat)).repeat({H, 1}));
  C = register_parameter("C", at::randn({H, modes, 2}) * std::sqrt(0.5));
  D = register_parameter("D", at::randn({channels}));
}

S4DImpl::DiscreteModes S4DImpl::discretise() const {
  const at::Tensor dt = log_dt.to(at::kFloat).exp();                                          // [H]
  const at::Tensor A = at::complex(-log_A_real.to(at::kFloat).exp(), A_imag.to(at::kFloat));  // [H, N/2]
  const at::Tensor dtA = A * dt.unsqueeze(-1);                                                // [H, N/2]
  const at::Tensor c = at::view_as_complex(C.to(at::kFloat).contiguous());                    // [H, N/2]
  return {dtA, c * (dtA.exp() - 1) / A};                                                      // C Bbar, ZOH
}

at::Tensor S4DImpl::kernel(int64_t length) const {
  const DiscreteModes m = discretise();
  const int64_t H = m.dtA.size(0), modes = m.dtA.size(1);
  // Abar^l for a chunk of positions at a time: [H, N/2, chunk] complex stays under 2^24 elements.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / (H * modes));
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < length; start += chunk) {
    const at::Tensor l = at::arange(start, std::min(length, start + chunk), m.dtA.options().dtype(at::kFloat));  // [n]
    const at::Tensor powers = (m.dtA.unsqueeze(-1) * l).exp();                                   // [H, N/2, n]
    parts.push_back(2 * at::real(at::matmul(m.CB.unsqueeze(1), powers).squeeze(1)));             // [H, n]
  }
  return at::cat(parts, 1);  // [H, L]
}

at::Tensor S4DImpl::spectrum(int64_t length, const c10::Device& device) {
  auto spectrum_of_kernel = [&] { return at::fft_rfft(kernel(length).to(device), 2 * length, -1); };  // [H, L + 1]
  if (at::GradMode::is_enabled() && log_dt.requires_grad()) return spectrum_of_kernel();  // training: no cache
  // Parameters replaced or updated in place (a load, an optimiser step) change their storage or version.
  std::string key = device.str();
  for (const at::Tensor& p : {log_dt, log_A_real, A_imag, C})
    key += c10::str("/", p.data_ptr(), ":", p.is_inference() ? 0 : p._version());
  if (cache_.key != key) {
    cache_.spectra.clear();
    cache_.key = key;
  }
  at::Tensor& cached = cache_.spectra[length];
  if (!cached.defined()) {
    cached = spectrum_of_kernel();
    ++cache_.builds;
  }
  return cached;
}

std::vector<int64_t> S4DImpl::cached_lengths() const {
  std::vector<int64_t> lengths;
  for (const auto& item : cache_.spectra) lengths.push_back(item.first);
  return lengths;
}

namespace {

// y_k = irfft(U S_k)[:L] + skip_k u for K kernel spectra S_k [H, L + 1] at once, in fp32 along a contiguous
// last axis (cuFFT's fast layout). u [B, L, C], spectra [K, H, L + 1], skips [K, C] -> [B, L, K, C]
at::Tensor fft_convolve(const at::Tensor& u, const at::Tensor& spectra, const at::Tensor& skips) {
  const int64_t B = u.size(0), L = u.size(1), C = u.size(2);
  const at::Tensor channels = at::empty({B, C, L}, u.options().dtype(at::kFloat)).copy_(u.transpose(1, 2));  // [B, C, L]
  const at::Tensor U = at::fft_rfft(channels, 2 * L, -1);                                    // [B, C, L + 1]
  const at::Tensor conv = at::fft_irfft(U.unsqueeze(1) * spectra, 2 * L, -1).narrow(-1, 0, L);  // [B, K, C, L]
  const at::Tensor y = conv + channels.unsqueeze(1) * skips.to(at::kFloat).unsqueeze(-1);    // [B, K, C, L]
  return y.permute({0, 3, 1, 2}).to(u.scalar_type(), /*non_blocking=*/false, /*copy=*/false,
                                    at::MemoryFormat::Contiguous);                           // [B, L, K, C]
}

}  // namespace

at::Tensor S4DImpl::forward(const at::Tensor& u) {
  TORCH_CHECK(u.dim() == 3 && u.size(2) == D.size(0), "S4D expects [B, L, ", D.size(0), "], got ", u.sizes());
  return fft_convolve(u, spectrum(u.size(1), u.device()).unsqueeze(0), D.unsqueeze(0)).flatten(2);  // [B, L, C]
}

namespace {

#ifdef DITGEN_HAVE_CUDA
// Both directions by the fused chunked scan. u [B, L, C] -> [B, L, 2C]
at::Tensor scan_kernel(const S4DImpl& forward, const S4DImpl& backward, const at::Tensor& u) {
  const c10::cuda::CUDAGuard guard(u.device());
  const S4DImpl::DiscreteModes f = forward.discretise(), b = backward.discretise();
  const int64_t B = u.size(0), L = u.size(1), C = u.size(2), M = f.dtA.size(1);
  const int64_t chunk = cuda::s4d_scan_chunk(B, L, C, M), chunks = (L + chunk - 1) / chunk;
  const at::Tensor dtA = at::stack({f.dtA, b.dtA});                                     // [2, H, M] complex
  const at::Tensor a = at::view_as_real(dtA.exp()).contiguous();                        // [2, H, M, 2]
  const at::Tensor a_chunk = at::view_as_real((dtA * static_cast<double>(chunk)).exp()).contiguous();
  const at::Tensor cb = at::view_as_real(at::stack({f.CB, b.CB})).contiguous();         // [2, H, M, 2]
  const at::Tensor skip = at::stack({forward.D, backward.D}).to(at::kFloat).contiguous();  // [2, C]
  at::Tensor states = at::empty({B, 2, chunks, C, M, 2}, u.options().dtype(at::kFloat));
  at::Tensor y = at::empty({B, L, 2 * C}, u.options());                                 // [B, L, 2C]
  cuda::S4dScanArgs args;
  args.u = u.data_ptr();
  args.y = y.data_ptr();
  args.a = a.data_ptr<float>();
  args.b = cb.data_ptr<float>();
  args.a_chunk = a_chunk.data_ptr<float>();
  args.skip = skip.data_ptr<float>();
  args.states = states.data_ptr<float>();
  args.batch = B;
  args.length = L;
  args.channels = C;
  args.heads = f.dtA.size(0);
  args.modes = M;
  args.chunk = chunk;
  const cudaError_t error = cuda::launch_s4d_scan(args, cuda::element_type_of(u), at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(error == cudaSuccess, "S4D scan kernel launch failed: ", cudaGetErrorString(error));
  return y;
}
#endif

}  // namespace

bool s4d_scan_kernel_supports(const S4DImpl& forward, const at::Tensor& u) {
  return cuda::s4d_scan_kernel_supports(u, forward.log_A_real.size(1));
}

at::Tensor bidirectional_s4d_scan_reference(const S4DImpl& forward, const S4DImpl& backward, const at::Tensor& u) {
  return at::cat({forward.forward_scan(u), backward.forward_scan(u.flip(1)).flip(1)}, 2);  // [B, L, 2C]
}

at::Tensor bidirectional_s4d(S4DImpl& forward, S4DImpl& backward, const at::Tensor& u) {
  TORCH_CHECK(u.dim() == 3 && u.size(2) == forward.D.size(0) && u.size(2) == backward.D.size(0),
              "bidirectional S4D expects [B, L, ", forward.D.size(0), "], got ", u.sizes());
#ifdef DITGEN_HAVE_CUDA
  if (cuda::s4d_scan_runs_kernel(u, forward.log_A_real.size(1)))
    return scan_kernel(forward, backward, u);
#endif
  const int64_t L = u.size(1);
  const at::Tensor spectra = at::stack({forward.spectrum(L, u.device()), backward.spectrum(L, u.device()).conj()});
  return fft_convolve(u, spectra, at::stack({forward.D, backward.D})).flatten(2);  // [B, L, 2C]
}

at::Tensor S4DImpl::forward_scan(const at::Tensor& u) const {
  TORCH_CHECK(u.dim() == 3 && u.size(2) == D.size(0), "S4D expects [B, L, ", D.size(0), "], got ", u.sizes());
  const DiscreteModes m = discretise();
  const at::Tensor Abar = m.dtA.exp();                                       // [H, N/2]
  const at::Tensor uf = u.to(at::kFloat);                                    // [B, L, C]
  // The state scaled by C Bbar per mode: x_l = Abar x_{l-1} + C Bbar u_l, so y_l = 2 Re sum_n x_l.
  at::Tensor x = at::zeros({u.size(0), u.size(2), Abar.size(1)}, m.CB.options());  // [B, C, N/2]
  std::vector<at::Tensor> ys;
  for (int64_t l = 0; l < u.size(1); ++l) {
    const at::Tensor ul = uf.select(1, l);                                   // [B, C]
    x = Abar * x + m.CB * ul.unsqueeze(-1);                                  // [B, C, N/2]
    ys.push_back(2 * at::real(x).sum(-1) + ul * D.to(at::kFloat));          // [B, C]
  }
  return at::stack(ys, 1).to(u.scalar_type());  // [B, L, C]
}

}  // namespace ditgen::nn
