// PT-DiT: window partition, roll and the Swin mask against brute force; the proxy-token block and a tiny
// model against golden tensors from scripts/make_golden_ptdit.py (our PyTorch reference,
// scripts/reference/ptdit_reference.py, which works in raster order with explicit windows); configs, FLOPs,
// generation and the CLI.
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/conversions.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/model_file.h"
#include "ditgen/nn/proxy_attention.h"
#include "ditgen/pipeline/benchmark.h"
#include "ditgen/pipeline/generator.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

const nn::WindowGrid kGrids[] = {
    {{1, 8, 8}, {1, 4, 4}},  // image, even windows
    {{1, 6, 6}, {1, 3, 3}},  // image, odd windows (shift 1)
    {{1, 4, 6}, {1, 4, 2}},  // one window tall: no shift on that axis
    {{4, 4, 8}, {2, 2, 4}},  // video, shift on every axis
    {{6, 4, 4}, {3, 2, 2}},  // video, odd temporal window
};

double tolerance(const at::Tensor& reference) { return 1e-5 * std::max(1.0, reference.abs().max().item<double>()); }

// A block with the golden file's "block.*" weights.
nn::ProxyTokenBlock golden_block(const std::map<std::string, at::Tensor>& g, bool keep_zero_cross_proj = false) {
  nn::ProxyTokenBlock block(32, 4, 64);
  at::NoGradGuard no_grad;
  for (auto& item : block->named_parameters()) {
    if (keep_zero_cross_proj && item.key().rfind("proxy_cross.proj.", 0) == 0) continue;
    item.value().copy_(g.at("block." + item.key()));
  }
  return block;
}

// The block on raster tokens, through the layout's orders as the model runs it.
at::Tensor run_block(nn::ProxyTokenBlock& block, const at::Tensor& x, const at::Tensor& mod, const nn::WindowGrid& grid,
                     int split) {
  const nn::WindowLayout layout = nn::make_window_layout(grid, x.device());
  at::Tensor h = x.index_select(1, layout.raster_of_window_token);            // [B, N, D] window-major
  h = block->forward(h, mod, grid, layout, split);                            // [B, N, D]
  return h.index_select(1, layout.window_of_raster_token);                    // [B, N, D] raster
}

nn::WindowGrid case_grid(const std::string& name) {
  if (name == "image") return {{1, 6, 6}, {1, 3, 3}};
  return {{4, 4, 8}, {2, 2, 4}};
}

}  // namespace

TEST_CASE("window partition and merge, roll and its undo, and the layout's orders round-trip (image and video)",
          "[ptdit]") {
  for (const nn::WindowGrid& g : kGrids) {
    INFO("grid " << g.grid[0] << "x" << g.grid[1] << "x" << g.grid[2]);
    const at::Tensor x = at::randn({2, g.grid[0], g.grid[1], g.grid[2], 3});
    const at::Tensor windows = nn::window_partition(x, g);
    REQUIRE(windows.sizes() == at::IntArrayRef({2, g.windows(), g.window_tokens(), 3}));
    CHECK(at::equal(nn::window_merge(windows, g), x));
    CHECK(at::equal(nn::roll_grid(nn::roll_grid(x, g), g, /*undo=*/true), x));
    // Window 0 holds the first p_t x p_h x p_w corner of the grid, in (t, y, x) order.
    const at::Tensor corner = x.slice(1, 0, g.window[0]).slice(2, 0, g.window[1]).slice(3, 0, g.window[2]);
    CHECK(at::equal(windows.select(1, 0), corner.reshape({2, g.window_tokens(), 3})));
    // The roll moves token (f, y, x) to (f - s_t, y - s_h, x - s_w).
    const auto s = g.shift();
    CHECK(at::equal(nn::roll_grid(x, g).select(1, 0).select(1, 0).select(1, 0),
                    x.select(1, s[0]).select(1, s[1]).select(1, s[2])));
    const nn::WindowLayout l = nn::make_window_layout(g, at::kCPU);
    const at::Tensor tokens = x.reshape({2, g.tokens(), 3});
    const at::Tensor major = tokens.index_select(1, l.raster_of_window_token);
    CHECK(at::equal(major.view({2, g.windows(), g.window_tokens(), 3}), windows));
    CHECK(at::equal(major.index_select(1, l.window_of_raster_token), tokens));
    // The shifted windows of the rolled grid, each window's tokens sorted by Swin region (stably).
    const at::Tensor order = std::get<1>(nn::shifted_region_labels(g, at::TensorOptions()).sort(true, 1, false));  // [P, n]
    const at::Tensor rolled = nn::window_partition(nn::roll_grid(x, g), g);                                   // [2, P, n, 3]
    const at::Tensor shifted = major.index_select(1, l.to_shifted);
    CHECK(at::equal(shifted.view_as(windows), rolled.gather(2, order.unsqueeze(0).unsqueeze(-1).expand_as(rolled))));
    CHECK(at::equal(shifted.index_select(1, l.from_shifted), major));
    // gather_tokens moves 8-byte words where rows allow (bf16 rows of 4 or 8, aligned), elements otherwise
    // (odd rows, autograd, a misaligned view), bit for bit.
    for (const at::Tensor& rows : {at::randn({2, g.tokens(), 8}).to(at::kBFloat16), at::randn({2, g.tokens(), 4}),
                                   at::randn({2, g.tokens(), 3}).to(at::kHalf), at::randn({2, g.tokens(), 4}).requires_grad_(),
                                   at::randn({2 * g.tokens() * 4 + 1}).to(at::kBFloat16).slice(0, 1).view({2, g.tokens(), 4})})
      CHECK(at::equal(nn::gather_tokens(rows, l.to_shifted), rows.index_select(1, l.to_shifted)));
    // The regions: Swin's mask in that order, and each region one run between consecutive starts.
    const nn::WindowRegions& regions = l.shift_regions;
    if (!(s[0] || s[1] || s[2])) {
      CHECK_FALSE(regions.mask.defined());
      CHECK_FALSE(regions.labels.defined());
      continue;
    }
    const at::Tensor mask = nn::shifted_window_mask(g, at::TensorOptions());  // [P, n, n]
    CHECK(at::equal(regions.mask, mask.gather(1, order.unsqueeze(2).expand_as(mask))
                                      .gather(2, order.unsqueeze(1).expand_as(mask))));
    const at::Tensor starts = regions.starts.to(at::kLong);                                            // [R + 1]
    const at::Tensor region = at::searchsorted(starts, at::arange(g.tokens()), false, true).sub(1);   // [N]
    const at::Tensor r = region.view({g.windows(), g.window_tokens()});                                // [P, n]
    CHECK(at::equal(r.unsqueeze(2) == r.unsqueeze(1), regions.mask));
    // The labels the fused kernel compares: equal exactly where the mask attends, windows apart.
    const at::Tensor labels = regions.labels.view({g.windows(), g.window_tokens()});                  // [P, n]
    CHECK(at::equal(labels.unsqueeze(2) == labels.unsqueeze(1), regions.mask));
    const int64_t P = g.windows(), n = g.window_tokens();
    const at::Tensor same = labels.view({P, n, 1, 1}) == labels.view({1, 1, P, n});                  // [P, n, P, n]
    CHECK(at::equal(same, same & at::eye(P, at::kBool).view({P, 1, P, 1})));
    CHECK(at::isin(at::arange(0, g.tokens(), g.window_tokens()), starts).all().item<bool>());  // no region spans windows
    CHECK(starts[-1].item<int64_t>() == g.tokens());
    CHECK((starts.slice(0, 1) - starts.slice(0, 0, -1)).max().item<int64_t>() == regions.longest);
  }
}

TEST_CASE("the shifted-window mask equals a brute-force construction", "[ptdit]") {
  for (const nn::WindowGrid& g : kGrids) {
    INFO("grid " << g.grid[0] << "x" << g.grid[1] << "x" << g.grid[2]);
    const auto s = g.shift();
    const bool shifts = s[0] || s[1] || s[2];
    const at::Tensor mask = nn::shifted_window_mask(g, at::TensorOptions());
    REQUIRE(mask.sizes() == at::IntArrayRef({g.windows(), g.window_tokens(), g.window_tokens()}));
    // Brute force: the rolled grid's token at r came from r + s (mod G); two tokens of a shifted window may
    // attend when those original places are within one window of each other on every axis (no wrap).
    const at::Tensor coords = at::stack(at::meshgrid({at::arange(g.grid[0]), at::arange(g.grid[1]), at::arange(g.grid[2])},
                                                     "ij"), -1).unsqueeze(0);  // [1, F, H, W, 3]
    const at::Tensor rolled = nn::window_partition(coords, g).squeeze(0);       // [P, n, 3] rolled coordinates
    auto acc = mask.accessor<bool, 3>();
    auto c = rolled.accessor<int64_t, 3>();
    int64_t blocked = 0;
    for (int64_t w = 0; w < g.windows(); ++w)
      for (int64_t i = 0; i < g.window_tokens(); ++i)
        for (int64_t j = 0; j < g.window_tokens(); ++j) {
          bool near = true;
          for (int a = 0; a < 3; ++a) {
            const int64_t oi = (c[w][i][a] + s[a]) % g.grid[a], oj = (c[w][j][a] + s[a]) % g.grid[a];
            near = near && std::llabs(oi - oj) < g.window[a];
          }
          CHECK(acc[w][i][j] == near);
          blocked += !near;
        }
    CHECK((blocked > 0) == shifts);  // only a shift cuts windows
  }
}

TEST_CASE("the proxy-token block matches the PyTorch reference on video and image grids", "[ptdit][golden]") {
  const auto g = io::load_tensors(golden("ptdit.safetensors"));
  nn::ProxyTokenBlock block = golden_block(g);
  at::NoGradGuard no_grad;
  for (const auto& [name, split] : std::vector<std::pair<std::string, int>>{{"video", 1}, {"video2", 2}, {"image", 1}}) {
    INFO(name);
    const at::Tensor expected = g.at(name + ".out");
    const at::Tensor out = run_block(block, g.at(name + ".x"), g.at(name + ".mod"), case_grid(name), split);
    CHECK(max_abs_diff(out, expected) <= tolerance(expected));
  }
}

TEST_CASE("with its zero-initialised proxy projection the block is the reference's window path alone", "[ptdit][golden]") {
  const auto g = io::load_tensors(golden("ptdit.safetensors"));
  nn::ProxyTokenBlock fresh(32, 4, 64);
  CHECK(fresh->proxy_cross->proj->weight.abs().max().item<float>() == 0);
  nn::ProxyTokenBlock block = golden_block(g, /*keep_zero_cross_proj=*/true);
  at::NoGradGuard no_grad;
  const at::Tensor expected = g.at("nogiim.out");
  const at::Tensor out = run_block(block, g.at("image.x"), g.at("image.mod"), case_grid("image"), 1);
  CHECK(max_abs_diff(out, expected) <= tolerance(expected));
  // and the proxies do matter once the projection is trained
  CHECK(max_abs_diff(out, g.at("image.out")) > 1e-3);
}

TEST_CASE("a PT-DiT model matches the reference at two sizes, window orders are cached per grid", "[ptdit][golden]") {
  LoadedModel m = load_model(golden("tiny_ptdit.model.safetensors"), at::kCPU, at::kFloat);
  REQUIRE(m.info.config.proxy.windows == 4);
  CHECK(m.info.config.top_blocks() == 0);
  CHECK(dit_parameter_count(m.info.config) == test::parameter_count(*m.model));
  const auto g = io::load_tensors(golden("ptdit.safetensors"));
  at::NoGradGuard no_grad;
  for (int size : {16, 24, 16}) {  // 8x8 tokens (2x2 windows), 12x12 (3x3 windows), then the first again
    INFO("size " << size);
    const std::string k = "model" + std::to_string(size);
    const at::Tensor expected = g.at(k + ".out");
    CHECK(max_abs_diff(m.model->forward(g.at(k + ".x"), g.at(k + ".t"), g.at(k + ".y")), expected) <=
          tolerance(expected));
  }
  // A token grid the windows do not divide is refused, naming what would fit.
  const std::string message = test::error_message([&] {
    m.model->forward(at::randn({1, 4, 20, 20}), at::tensor({1}), at::tensor({1}));
  });
  CHECK(test::contains(message, "a 10x10 token grid does not divide into this PT-DiT's 4x4 windows"));
  CHECK(test::contains(message, "must be a multiple of 4"));
}

TEST_CASE("a dense DiT becomes a PT-DiT: with one window a grid and equal adaLN heads it is the same function",
          "[ptdit][conversion]") {
  at::NoGradGuard no_grad;
  LoadedModel dense = load_model(golden("tiny_text_dit.model.safetensors"), at::kCPU, at::kFloat);
  auto head = [](DiT& m, int block) -> torch::nn::LinearImpl& {
    return *m->blocks[block]->as<nn::DiTBlock>()->adaLN_modulation[1]->as<torch::nn::Linear>();
  };
  const int depth = dense.info.config.depth;
  for (int i = 1; i < depth; ++i) {
    head(dense.model, i).weight.copy_(head(dense.model, 0).weight);
    head(dense.model, i).bias.copy_(head(dense.model, 0).bias);
  }
  DiT proxy = make_proxy(dense.model, ProxyConfig{1, 1, 4}, depth);
  CHECK(proxy->config().proxy.windows == 1);
  CHECK(proxy->config().text.vocabulary == dense.info.config.text.vocabulary);
  at::manual_seed(3);
  const at::Tensor x = at::randn({2, 3, 8, 8}), t = at::tensor(std::vector<int64_t>{20, 700});
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 2, 3, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}).view({2, 8});
  const at::Tensor want = dense.model->forward_reference(x, t, ids);
  INFO("max abs error " << max_abs_diff(proxy->forward_reference(x, t, ids), want));
  CHECK(max_abs_diff(proxy->forward_reference(x, t, ids), want) <= 1e-5 * want.abs().max().item<double>());
  // More windows: the same weights, no longer the same function (windows cut the attention).
  DiT windowed = make_proxy(dense.model, ProxyConfig{2, 1, 4}, depth);
  CHECK(max_abs_diff(windowed->forward_reference(x, t, ids), want) > 1e-4);

  // Fewer blocks take evenly spaced dense blocks, the first and the last; the blocks' adaLN biases differ
  // from the shared mean by their tables; the shifted windows start silent.
  DiTConfig deep_config = dense.info.config;
  deep_config.depth = 3;
  DiT deep(deep_config);
  for (auto& p : deep->parameters()) p.normal_();
  DiT two = make_proxy(deep, ProxyConfig{2, 1, 4}, 2);
  REQUIRE(two->config().depth == 2);
  auto block = [&](int j) { return two->proxy_blocks[j]->as<nn::ProxyTokenBlock>(); };
  auto dense_block = [&](int i) { return deep->blocks[i]->as<nn::DiTBlock>(); };
  CHECK(max_abs_diff(block(0)->mlp->fc1->weight, dense_block(0)->mlp->fc1->weight) == 0);
  CHECK(max_abs_diff(block(1)->mlp->fc1->weight, dense_block(2)->mlp->fc1->weight) == 0);
  CHECK(max_abs_diff(block(1)->shifted_attn->qkv->weight, dense_block(2)->attn->qkv->weight) == 0);
  const int64_t D = deep_config.hidden_size;
  CHECK(max_abs_diff(block(1)->proxy_cross->kv->weight, dense_block(2)->attn->qkv->weight.narrow(0, D, 2 * D)) == 0);
  CHECK(block(1)->proxy_cross->proj->weight.abs().max().item<double>() == 0);
  const auto& shared = *two->adaLN_modulation[1]->as<torch::nn::Linear>();
  const at::Tensor mlp_bias = shared.bias.view({9, D}).narrow(0, 6, 3) + block(1)->scale_shift_table.narrow(0, 6, 3);
  CHECK(max_abs_diff(mlp_bias.reshape({-1}), head(deep, 2).bias.narrow(0, 3 * D, 3 * D)) <= 1e-6);
  CHECK(shared.weight.narrow(0, 5 * D, D).abs().max().item<double>() == 0);
  CHECK((shared.bias.view({9, D})[5] + block(0)->scale_shift_table[5]).abs().max().item<double>() == 0);

  CHECK(test::error_kind([&] { make_proxy(proxy, ProxyConfig{1, 1, 4}, 1); }) == ErrorKind::Usage);
  CHECK(test::error_kind([&] { make_proxy(dense.model, ProxyConfig{1, 1, 4}, depth + 1); }) == ErrorKind::Usage);
  CHECK(test::error_kind([&] { make_proxy(dense.model, ProxyConfig{1, 1, 4}, 0); }) == ErrorKind::Usage);
}

TEST_CASE("with an adaLN head a block, a trained dense DiT becomes a PT-DiT of the same function (one window)",
          "[ptdit][conversion]") {
  at::NoGradGuard no_grad;
  LoadedModel dense = load_model(golden("tiny_text_dit.model.safetensors"), at::kCPU, at::kFloat);
  const int depth = dense.info.config.depth;
  ProxyConfig per_block{1, 1, 4};
  per_block.adaln_single = false;
  at::manual_seed(3);
  const at::Tensor x = at::randn({2, 3, 8, 8}), t = at::tensor(std::vector<int64_t>{20, 700});
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 2, 3, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}).view({2, 8});
  const at::Tensor want = dense.model->forward_reference(x, t, ids);
  // The golden model's blocks have different adaLN heads: adaLN-single's mean is not the function, a head a
  // block is.
  DiT exact = make_proxy(dense.model, per_block, depth);
  CHECK_FALSE(exact->adaLN_modulation);
  INFO("max abs error " << max_abs_diff(exact->forward_reference(x, t, ids), want));
  CHECK(max_abs_diff(exact->forward_reference(x, t, ids), want) <= 1e-5 * want.abs().max().item<double>());
  DiT single = make_proxy(dense.model, ProxyConfig{1, 1, 4}, depth);
  CHECK(max_abs_diff(single->forward_reference(x, t, ids), want) > 1e-3 * want.abs().max().item<double>());
  // The layout survives the file format and counts its heads.
  const DiTConfig back = config_from_json(to_json(exact->config()));
  CHECK_FALSE(back.proxy.adaln_single);
  CHECK(config_from_json(to_json(single->config())).proxy.adaln_single);
  CHECK(test::parameter_count(*exact) == dit_parameter_count(exact->config()));
  CHECK(test::parameter_count(*single) == dit_parameter_count(single->config()));
  const int64_t D = dense.info.config.hidden_size;
  CHECK(test::parameter_count(*exact) - test::parameter_count(*single) == (depth - 1) * (9 * D * D + 9 * D));
  nlohmann::json j = to_json(exact->config());
  j["proxy"]["adaln"] = "per_layer";
  CHECK(test::contains(test::error_message([&] { config_from_json(j); }), "proxy.adaln must be"));
}

TEST_CASE("PT-DiT configs: JSON round trip, validation, FLOPs and the registry", "[ptdit]") {
  DiTConfig c = official_config("PT-DiT-XL/2");
  CHECK((c.proxy.windows == 8 && c.depth == 28 && c.hidden_size == 1152));
  const DiTConfig back = config_from_json(to_json(c));
  CHECK((back.proxy.windows == 8 && back.proxy.proxy_split == 1));
  // FLOPs by hand at 32x32 latents (N = 256, windows of n = 4, 64 proxies), MAC convention.
  const double D = 1152, N = 256, n = 4, M = 64, mlp = 2 * D * 4 * D;
  const double block = M * 4 * D * D + 2 * M * M * D + N * 2 * D * D + M * 2 * D * D + 2 * N * M * D +
                       2 * (N * 4 * D * D + 2 * N * n * D) + N * mlp;
  const double stem_head = dit_gflops(official_config("DiT-XL/2"), 32, 32) * 1e9 -
                           28 * (N * (4 * D * D + mlp) + 2 * N * N * D + 6 * D * D);
  CHECK(dit_gflops(c, 32, 32) == Approx((stem_head + 28 * block + 9 * D * D) / 1e9).epsilon(1e-9));
  // At 2048 px (256x256 latents, 16384 tokens) the proxy blocks cost about half the dense ones.
  const double ratio = dit_gflops(c, 256, 256) / dit_gflops(official_config("DiT-XL/2"), 256, 256);
  CHECK((ratio > 0.4 && ratio < 0.55));
  // Validation: windows must divide the token grid; no sparse layout or lora patches beside them.
  DiTConfig bad = c;
  bad.proxy.windows = 5;
  CHECK(test::contains(test::error_message([&] { bad.validate(ErrorKind::Model); }), "must divide into proxy.windows"));
  bad = c;
  bad.sparse = {1, 1, 1, 1, 2, 4};
  CHECK(test::contains(test::error_message([&] { bad.validate(ErrorKind::Model); }), "do not combine"));
  nlohmann::json j = to_json(c);
  j["proxy"]["proxy_split"] = 0;
  CHECK(test::error_kind([&] { config_from_json(j); }) == ErrorKind::Model);
}

TEST_CASE("PT-DiT generates and trains on the CPU, the CLI reports its windows and refuses grids they do not divide",
          "[ptdit][cli]") {
  test::TempDir dir;
  const test::CliFlowModels models = test::check_cli_flow(
      dir, {.spec = "name: tiny-pt\nconfig:\n  depth: 2\n  hidden_size: 32\n  num_heads: 2\n  patch_size: 2\n"
                    "  in_channels: 1\n  input_size: [32, 32]\n  num_classes: 10\n  image_space: pixel\n"
                    "  proxy: {windows: 4}\n",
            .init_args = {"--weights", "normal"},
            .info_line = "proxy:       2 proxy-token blocks; 4x4 windows of 4x4 tokens at 32x32, 1 proxy a window; "
                         "adaLN-single",
            .refused_size = 36,
            .refusal = "does not divide into this PT-DiT's 4x4 windows"});
  if (models.trained.empty()) return;
  LoadedModel trained = load_model(models.trained, at::kCPU, at::kFloat);
  CHECK(trained.info.config.proxy.windows == 4);
  // Training moved the zero-initialised proxy projection: the global path learns.
  auto* block = trained.model->proxy_blocks[0]->as<nn::ProxyTokenBlock>();
  CHECK(block->proxy_cross->proj->weight.abs().max().item<float>() > 0);
}

TEST_CASE("the shipped PT-DiT model is the documented one and generates the classes asked for", "[ptdit][cli]") {
  const std::string model = test::shipped_model("fmnist-ptdit.safetensors");
  LoadedModel m = load_model(model, at::kCPU, at::kFloat);
  const DiTConfig& c = m.info.config;
  CHECK((c.depth == 4 && c.hidden_size == 256 && c.num_heads == 4 && c.patch_size == 2 && c.proxy.windows == 8 &&
         c.proxy.proxy_split == 1));
  CHECK(dit_parameter_count(c) == 7183624);  // models/fmnist-ptdit.md
  test::check_generates_asked_classes(model);
}

TEST_CASE("on the GPU, shifted-window regions run as variable-length flash attention and match the masked reference",
          "[ptdit][cuda]") {
  if (test::no_cuda_device()) return;
  at::NoGradGuard no_grad;
  for (const nn::WindowGrid& g : {nn::WindowGrid{{1, 16, 16}, {1, 4, 4}}, nn::WindowGrid{{4, 6, 8}, {2, 3, 4}}}) {
    INFO("grid " << g.grid[0] << "x" << g.grid[1] << "x" << g.grid[2]);
    const int64_t B = 3, H = 2, hd = 72;
    // As the model slices them from its fused qkv projection. [3, B * P, H, n, hd]
    const at::Tensor qkv = at::randn({B * g.windows(), g.window_tokens(), 3, H, hd}, at::kCUDA).permute({2, 0, 3, 1, 4});
    const at::Tensor half = qkv.to(at::kBFloat16);
    const nn::WindowLayout on_gpu = nn::make_window_layout(g, at::kCUDA);
    REQUIRE(nn::regions_run_variable_length(half[0], on_gpu.shift_regions));
    const at::Tensor fast = nn::attention_core(half[0], half[1], half[2], on_gpu.shift_regions).cpu().to(at::kFloat);
    const at::Tensor cpu = qkv.cpu();
    const at::Tensor reference = nn::attention_core(cpu[0], cpu[1], cpu[2], nn::make_window_layout(g, at::kCPU).shift_regions);
    CHECK((fast - reference).abs().max().item<float>() < 3e-2);  // bf16 inputs
    // Attending across regions would be far off: the regions matter here.
    const at::Tensor unmasked = nn::attention_core(cpu[0], cpu[1], cpu[2]);
    CHECK((unmasked - reference).abs().max().item<float>() > 0.2);
  }
}

TEST_CASE("on the GPU, the fused window attention kernel equals the reference, plain and shifted, image and video",
          "[ptdit][cuda]") {
  if (test::no_cuda_device()) return;
  at::NoGradGuard no_grad;
  struct Case {
    nn::WindowGrid g;
    int64_t heads, head_dim;
  };
  // Window sizes below, at and above one 16-query tile and one 64-key chunk; padded head dims 64, 80 and 128.
  for (const Case& c : {Case{{{1, 8, 8}, {1, 2, 2}}, 2, 16}, Case{{{1, 16, 16}, {1, 4, 4}}, 3, 64},
                        Case{{{4, 6, 8}, {2, 3, 4}}, 2, 72}, Case{{{1, 64, 64}, {1, 8, 8}}, 4, 72},
                        Case{{{2, 12, 16}, {2, 6, 8}}, 2, 96}, Case{{{1, 32, 32}, {1, 16, 16}}, 2, 128},
                        Case{{{1, 32, 32}, {1, 16, 16}}, 2, 72}}) {
    const nn::WindowGrid& g = c.g;
    INFO("grid " << g.grid[0] << "x" << g.grid[1] << "x" << g.grid[2] << ", window " << g.window_tokens() << ", head "
                 << c.head_dim);
    const nn::WindowLayout on_gpu = nn::make_window_layout(g, at::kCUDA), on_cpu = nn::make_window_layout(g, at::kCPU);
    const at::Tensor qkv = at::randn({2, g.tokens(), 3 * c.heads * c.head_dim}, at::kCUDA);  // [B, N, 3D]
    for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
      const at::Tensor half = qkv.to(dtype);
      REQUIRE(nn::window_attention_runs_kernel(half, c.heads, g));
      const at::Tensor rounded = half.cpu().to(at::kFloat);  // the kernel's inputs, in fp32
      for (const bool shifted : {false, true}) {
        const at::Tensor fast = nn::window_attention(half, c.heads, g, on_gpu, shifted).cpu().to(at::kFloat);
        const at::Tensor reference = nn::window_attention_reference(rounded, c.heads, g, on_cpu, shifted);
        CHECK(max_abs_diff(fast, reference) < (dtype == at::kHalf ? 4e-3 : 3e-2));
        // The shift and the regions matter: the other windows' attention is far off.
        CHECK(max_abs_diff(nn::window_attention_reference(rounded, c.heads, g, on_cpu, !shifted), reference) > 0.1);
      }
    }
  }
  // What the kernel refuses runs the reference: fp32, and windows over 256 tokens.
  CHECK_FALSE(nn::window_attention_runs_kernel(at::randn({1, 64, 3 * 64}, at::kCUDA), 2, {{1, 8, 8}, {1, 4, 4}}));
  CHECK_FALSE(nn::window_attention_runs_kernel(at::randn({1, 1024, 3 * 64}, at::kCUDA).to(at::kBFloat16), 2,
                                               {{1, 32, 32}, {1, 32, 32}}));
}

TEST_CASE("on the GPU, bench --mixing --profile lists the token mixing's kernels, the window kernel among them",
          "[ptdit][cuda]") {
  if (test::no_cuda_device()) return;
  BenchOptions o;
  o.model = golden("tiny_ptdit.model.safetensors");
  o.device = "cuda";
  o.batches = {2};
  o.paths = {"fused"};
  o.mixing = true;
  o.profile = true;
  o.sample_batch = 0;
  o.warmup = 1;
  o.reps = 2;
  std::vector<BenchRecord> mixing;
  run_benchmark(o, [&](const BenchRecord& r) {
    if (r.kind == "mixing") mixing.push_back(r);
  });
  REQUIRE(mixing.size() == 1);
  bool window_kernel = false;
  for (const KernelTime& k : mixing[0].kernels) window_kernel |= k.name.find("window_attention_kernel") != std::string::npos;
  CHECK(window_kernel);
}

TEST_CASE("on the GPU, the fused proxy-token path and captured generation match the reference", "[ptdit][cuda]") {
  if (test::no_cuda_device()) return;
  LoadedModel m = load_model(golden("tiny_ptdit.model.safetensors"), at::kCPU, at::kFloat);
  test::check_cuda_forward_matches_golden(m, io::load_tensors(golden("ptdit.safetensors")), {"model16", "model24"});
  at::NoGradGuard no_grad;
  // In bf16 the shifted windows run as variable-length flash attention, which must capture as well.
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    Generator generator(m, at::kCUDA, dtype);
    test::check_captured_matches_eager(generator, test::short_guided_request());
  }
}
