// DiffuSSM: the S4D FFT convolution against its recurrence and against the reference's Toeplitz
// convolution; the bidirectional SSM's backward direction; the kernel-spectrum cache; the block and a tiny
// model against golden tensors from scripts/make_golden_diffussm.py (scripts/reference/diffussm_reference.py);
// configs, FLOPs, generation, training and the CLI.
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/model_file.h"
#include "ditgen/nn/diffussm_block.h"
#include "ditgen/nn/s4d.h"
#include "ditgen/pipeline/generator.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

double scale_of(const at::Tensor& reference) { return std::max(1.0, reference.abs().max().item<double>()); }

// Copies tensors "prefix.NAME" of a golden file into the module's parameters of the same names.
void load_prefixed(torch::nn::Module& module, const std::map<std::string, at::Tensor>& g, const std::string& prefix) {
  at::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) item.value().copy_(g.at(prefix + "." + item.key()));
}

}  // namespace

TEST_CASE("S4D: the FFT convolution equals the direct recurrence in fp32, per-channel and shared kernels",
          "[diffussm]") {
  at::manual_seed(11);
  at::NoGradGuard no_grad;
  for (bool shared : {false, true}) {
    nn::S4D ssm(8, 64, shared);
    CHECK(ssm->kernel(5).size(0) == (shared ? 1 : 8));
    for (int64_t L : {1, 7, 300}) {
      INFO("shared " << shared << ", L " << L);
      const at::Tensor u = at::randn({2, L, 8});
      const at::Tensor scan = ssm->forward_scan(u);
      CHECK(max_abs_diff(ssm->forward(u), scan) <= 1e-4);  // the bound, absolute (outputs reach ~10)
    }
  }
  // Half-precision input runs the convolution in fp32 and returns its own dtype.
  nn::S4D ssm(8, 16, false);
  const at::Tensor u = at::randn({1, 64, 8});
  const at::Tensor y = ssm->forward(u.to(at::kBFloat16));
  CHECK(y.scalar_type() == at::kBFloat16);
  CHECK(max_abs_diff(y.to(at::kFloat), ssm->forward_scan(u.to(at::kBFloat16).to(at::kFloat))) <=
        2e-2 * scale_of(y.to(at::kFloat)));
}

TEST_CASE("S4D matches the reference's Toeplitz convolution", "[diffussm][golden]") {
  const auto g = io::load_tensors(golden("diffussm.safetensors"));
  at::NoGradGuard no_grad;
  for (const std::string name : {"s4d_channel", "s4d_shared"}) {
    INFO(name);
    nn::S4D ssm(6, 8, name == "s4d_shared");
    load_prefixed(*ssm, g, name);
    const at::Tensor expected = g.at(name + ".y");
    CHECK(max_abs_diff(ssm->forward(g.at(name + ".u")), expected) <= 1e-4 * scale_of(expected));
    CHECK(max_abs_diff(ssm->forward_scan(g.at(name + ".u")), expected) <= 1e-4 * scale_of(expected));
  }
}

TEST_CASE("the bidirectional SSM's backward direction is flip, SSM, flip", "[diffussm]") {
  at::manual_seed(12);
  at::NoGradGuard no_grad;
  nn::DiffuSSMBlock block(8, 2, 12, 16, false);
  const int64_t L = 40, D = 8;
  const at::Tensor u = at::randn({2, L, D});
  const at::Tensor y = block->bidirectional_ssm(u);                                       // [B, L, 2D]
  REQUIRE(y.sizes() == at::IntArrayRef({2, L, 2 * D}));
  const at::Tensor forward = block->ssm_forward->forward_scan(u);
  const at::Tensor backward = block->ssm_backward->forward_scan(u.flip(1)).flip(1);
  CHECK(max_abs_diff(y.narrow(2, 0, D), forward) <= 1e-4 * scale_of(forward));
  CHECK(max_abs_diff(y.narrow(2, D, D), backward) <= 1e-4 * scale_of(backward));
  // The scan kernel's reference is this construction.
  CHECK(at::equal(nn::bidirectional_s4d_scan_reference(*block->ssm_forward, *block->ssm_backward, u),
                  at::cat({forward, backward}, 2)));
  // A change at position p reaches the forward half only at l >= p and the backward half only at l <= p
  // (up to the FFT's rounding).
  const int64_t p = 17;
  at::Tensor bumped = u.clone();
  bumped.select(1, p).add_(1.0);
  const at::Tensor changed = (block->bidirectional_ssm(bumped) - y).abs().amax({0});    // [L, 2D]
  CHECK(changed.narrow(0, 0, p).narrow(1, 0, D).max().item<float>() < 1e-5f);
  CHECK(changed.narrow(0, p + 1, L - p - 1).narrow(1, D, D).max().item<float>() < 1e-5f);
  CHECK(changed.narrow(0, p + 1, L - p - 1).narrow(1, 0, D).max().item<float>() > 1e-2f);
  CHECK(changed.narrow(0, 0, p).narrow(1, D, D).max().item<float>() > 1e-2f);
}

TEST_CASE("S4D caches a kernel spectrum per length and rebuilds them when a parameter changes", "[diffussm]") {
  at::manual_seed(13);
  nn::S4D ssm(4, 8, false);
  auto check_against_scan = [&](int64_t L) {
    const at::Tensor u = at::randn({1, L, 4});
    const at::Tensor scan = ssm->forward_scan(u);
    CHECK(max_abs_diff(ssm->forward(u), scan) <= 1e-4 * scale_of(scan));
  };
  using Lengths = std::vector<int64_t>;
  {
    at::NoGradGuard no_grad;
    CHECK(ssm->kernel_builds() == 0);
    check_against_scan(16);
    CHECK((ssm->cached_lengths() == Lengths{16} && ssm->kernel_builds() == 1));
    check_against_scan(16);
    CHECK(ssm->kernel_builds() == 1);  // reused
    check_against_scan(24);            // a new length builds its own
    CHECK((ssm->cached_lengths() == Lengths{16, 24} && ssm->kernel_builds() == 2));
    check_against_scan(16);
    CHECK(ssm->kernel_builds() == 2);
    ssm->log_dt.add_(0.3);  // an in-place update (a load, an optimiser step) invalidates every spectrum
    check_against_scan(24);
    CHECK((ssm->cached_lengths() == Lengths{24} && ssm->kernel_builds() == 3));
  }
  // In training the kernel is rebuilt every forward, and gradients reach the SSM parameters.
  const at::Tensor u = at::randn({1, 16, 4});
  ssm->forward(u).square().sum().backward();
  CHECK(ssm->kernel_builds() == 3);
  for (const at::Tensor& p : {ssm->log_dt, ssm->log_A_real, ssm->A_imag, ssm->C, ssm->D}) {
    REQUIRE(p.grad().defined());
    CHECK(p.grad().abs().max().item<float>() > 0);
  }
}

TEST_CASE("the DiffuSSM block matches the PyTorch reference", "[diffussm][golden]") {
  const auto g = io::load_tensors(golden("diffussm.safetensors"));
  nn::DiffuSSMBlock block(16, 2, 24, 8, false);
  load_prefixed(*block, g, "block");
  at::NoGradGuard no_grad;
  const at::Tensor expected = g.at("block.out");
  CHECK(max_abs_diff(block->forward(g.at("block.x"), g.at("block.c")), expected) <= 1e-4 * scale_of(expected));
}

TEST_CASE("a DiffuSSM model matches the reference at two sizes and refuses token counts its hourglass cannot pack",
          "[diffussm][golden]") {
  LoadedModel m = load_model(golden("tiny_diffussm.model.safetensors"), at::kCPU, at::kFloat);
  REQUIRE(m.info.config.ssm.state_size == 8);
  CHECK(m.info.config.top_blocks() == 0);
  CHECK(dit_parameter_count(m.info.config) == test::parameter_count(*m.model));
  const auto g = io::load_tensors(golden("diffussm.safetensors"));
  at::NoGradGuard no_grad;
  for (const std::string k : {"model8", "model6x10", "model8"}) {  // L = 64, 60, then 64 again (its spectra cached)
    INFO(k);
    const at::Tensor expected = g.at(k + ".out");
    CHECK(max_abs_diff(m.model->forward(g.at(k + ".x"), g.at(k + ".t"), g.at(k + ".y")), expected) <=
          1e-4 * scale_of(expected));
  }
  const std::string message = test::error_message([&] {
    m.model->forward(at::randn({1, 4, 5, 5}), at::tensor({1}), at::tensor({1}));
  });
  CHECK(test::contains(message, "a 5x5 token grid does not pack into this DiffuSSM's hourglass"));
  CHECK(test::contains(message, "must be a multiple of 2"));
}

TEST_CASE("DiffuSSM configs: JSON round trip, validation, parameters, FLOPs and the registry", "[diffussm]") {
  const DiTConfig c = official_config("DiffuSSM-XL");
  CHECK((c.depth == 29 && c.hidden_size == 1152 && c.patch_size == 1 && c.mlp_hidden() == 1536));
  CHECK((c.ssm.state_size == 64 && c.ssm.hourglass == 2 && !c.ssm.shared_kernel()));
  const DiTConfig back = config_from_json(to_json(c));
  CHECK((back.ssm.state_size == 64 && back.ssm.hourglass == 2 && back.ssm.kernels == "channel"));
  // The paper reports about 673M parameters for DiffuSSM-XL; ours has 694M (gate width 4D/3, per-channel S4D).
  INFO("DiffuSSM-XL parameters: " << dit_parameter_count(c));
  CHECK((dit_parameter_count(c) > 660e6 && dit_parameter_count(c) < 700e6));
  // FLOPs by hand at 32x32 latents (L = 1024), MAC convention: the dense layers, the FFT convolutions, adaLN.
  const double D = 1152, L = 1024, F = 1536, n = 2 * L;
  const double conv = 2 * D * (2 * 1.25 * n * std::log2(n) + 3 * n);
  const double block = L * (4 * D * D + 2 * F * D + F * D / 2) + conv + 3 * D * D;
  const double stem_head = L * 4 * D + 256 * D + D * D + 2 * D * D + L * D * 8;
  CHECK(dit_gflops(c, 32, 32) == Approx((stem_head + 29 * block) / 1e9).epsilon(1e-9));
  // About the paper's 280 GFLOPs at 256 px; at 64k tokens far below attention's quadratic cost.
  CHECK((dit_gflops(c, 32, 32) > 250 && dit_gflops(c, 32, 32) < 300));
  CHECK(dit_gflops(c, 256, 256) < 0.1 * dit_gflops(official_config("DiT-XL/2"), 512, 512));
  // Validation.
  DiTConfig bad = c;
  bad.ssm.state_size = 7;
  CHECK(test::contains(test::error_message([&] { bad.validate(ErrorKind::Model); }), "ssm.state_size must be even"));
  bad = c;
  bad.ssm.kernels = "diagonal";
  CHECK(test::contains(test::error_message([&] { bad.validate(ErrorKind::Model); }), "channel or shared"));
  bad = c;
  bad.proxy.windows = 4;
  CHECK(test::contains(test::error_message([&] { bad.validate(ErrorKind::Model); }), "do not combine"));
  bad = c;
  bad.input_height = bad.input_width = 5;
  bad.ssm.hourglass = 2;
  CHECK(test::contains(test::error_message([&] { bad.validate(ErrorKind::Model); }), "must pack by ssm.hourglass"));
  nlohmann::json j = to_json(c);
  j["ssm"]["hourglass"] = 0;
  CHECK(test::error_kind([&] { config_from_json(j); }) == ErrorKind::Model);
  j = to_json(c);
  j["ssm"] = "yes";
  CHECK(test::error_kind([&] { config_from_json(j); }) == ErrorKind::Model);
}

TEST_CASE("DiffuSSM generates and trains on the CPU, the CLI reports its blocks and refuses unpackable grids",
          "[diffussm][cli]") {
  test::TempDir dir;
  const test::CliFlowModels models = test::check_cli_flow(
      dir, {.spec = "name: tiny-ssm\nconfig:\n  depth: 2\n  hidden_size: 32\n  num_heads: 2\n  patch_size: 1\n"
                    "  mlp_ratio: 1.5\n  in_channels: 1\n  input_size: [32, 32]\n  num_classes: 10\n"
                    "  image_space: pixel\n  ssm: {state_size: 16}\n",
            .info_line = "ssm:         2 gated bidirectional S4D blocks, state 16, a kernel per channel; hourglass 2 "
                         "(dense layers on 512 packed tokens of 1024 at 32x32), gate width 48",
            .refused_size = 33,
            .refusal = "does not pack into this DiffuSSM's hourglass"});
  if (models.trained.empty()) return;
  LoadedModel trained = load_model(models.trained, at::kCPU, at::kFloat);
  LoadedModel initial = load_model(models.initial, at::kCPU, at::kFloat);
  CHECK(trained.info.config.ssm.state_size == 16);
  // Training reached the SSM's own parameters.
  auto log_dt = [](LoadedModel& m) { return m.model->ssm_blocks[0]->as<nn::DiffuSSMBlock>()->ssm_forward->log_dt; };
  CHECK(max_abs_diff(log_dt(trained), log_dt(initial)) > 0);
}

TEST_CASE("the shipped DiffuSSM model is the documented one and generates the classes asked for",
          "[diffussm][cli]") {
  const std::string model = test::shipped_model("fmnist-diffussm.safetensors");
  LoadedModel m = load_model(model, at::kCPU, at::kFloat);
  const DiTConfig& c = m.info.config;
  CHECK((c.depth == 6 && c.hidden_size == 256 && c.patch_size == 1 && c.ssm.state_size == 64 &&
         c.ssm.hourglass == 2 && !c.ssm.shared_kernel()));
  CHECK(dit_parameter_count(c) == 7628542);  // models/fmnist-diffussm.md
  test::check_generates_asked_classes(model);
}

TEST_CASE("on the GPU, the DiffuSSM model and captured generation match the reference", "[diffussm][cuda]") {
  if (test::no_cuda_device()) return;
  LoadedModel m = load_model(golden("tiny_diffussm.model.safetensors"), at::kCPU, at::kFloat);
  const auto g = io::load_tensors(golden("diffussm.safetensors"));
  at::NoGradGuard no_grad;
  // The FFT convolution against the recurrence on the GPU, long sequence.
  nn::S4D ssm(64, 64, false);
  ssm->to(at::kCUDA);
  const at::Tensor u = at::randn({2, 2048, 64}, at::kCUDA);
  const at::Tensor scan = ssm->forward_scan(u.cpu().to(at::kCUDA));
  CHECK(max_abs_diff(ssm->forward(u), scan) <= 1e-4 * scale_of(scan));
  for (bool scan_kernel : {false, true}) {
    INFO("scan kernel " << scan_kernel);
    nn::set_s4d_scan_kernel_enabled(scan_kernel);
    test::check_cuda_forward_matches_golden(m, g, {"model8", "model6x10"});
    Generator generator(m, at::kCUDA, at::kFloat);
    test::check_captured_matches_eager(generator, test::short_guided_request());
  }
  nn::set_s4d_scan_kernel_enabled(false);
}

TEST_CASE("on the GPU, the fused S4D scan kernel equals the recurrence and the FFT convolution", "[diffussm][cuda]") {
  if (test::no_cuda_device()) return;
  at::manual_seed(13);
  at::NoGradGuard no_grad;
  struct Case {
    int channels, state_size;  // state sizes 8, 16, 24, 64: 4, 8, 12, 32 modes, on 1, 1, 2 and 4 lanes
    bool shared;
    int64_t batch, length;     // lengths from one position to many chunks
  };
  for (const Case& k : {Case{6, 8, false, 2, 1}, Case{6, 16, false, 2, 7}, Case{64, 24, false, 2, 300},
                        Case{64, 64, true, 2, 300}, Case{32, 64, false, 3, 5000}}) {
    INFO("C " << k.channels << ", N " << k.state_size << ", shared " << k.shared << ", L " << k.length);
    nn::S4D forward(k.channels, k.state_size, k.shared), backward(k.channels, k.state_size, k.shared);
    forward->to(at::kCUDA);
    backward->to(at::kCUDA);
    const at::Tensor u = at::randn({k.batch, k.length, k.channels}, at::kCUDA);
    const at::Tensor reference = nn::bidirectional_s4d_scan_reference(*forward, *backward, u);  // [B, L, 2C]
    const at::Tensor fft = nn::bidirectional_s4d(*forward, *backward, u);
    REQUIRE(nn::s4d_scan_kernel_supports(*forward, u));  // before the switch: a failed REQUIRE leaves it off
    nn::set_s4d_scan_kernel_enabled(true);
    const at::Tensor scanned = nn::bidirectional_s4d(*forward, *backward, u);
    const at::Tensor u16 = u.to(at::kBFloat16);
    const at::Tensor scanned16 = nn::bidirectional_s4d(*forward, *backward, u16);
    nn::set_s4d_scan_kernel_enabled(false);
    CHECK(test::close_relative(scanned.cpu(), reference.cpu(), 1e-4));
    CHECK(test::close_relative(scanned.cpu(), fft.cpu(), 1e-4));
    REQUIRE(scanned16.scalar_type() == at::kBFloat16);
    const at::Tensor reference16 = nn::bidirectional_s4d_scan_reference(*forward, *backward, u16.to(at::kFloat));
    CHECK(test::close_relative(scanned16.cpu().to(at::kFloat), reference16.cpu(), 2e-2));
  }
}
