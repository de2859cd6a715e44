// Video backbones (docs/VIDEO.md): the dense DiT and the PT-DiT on clips against golden tensors from
// scripts/make_golden_video.py (our PyTorch reference, scripts/reference/video_reference.py), the image model
// as the start of a video model, clip shapes through guidance and samplers, and what clips refuse.
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>

#include "catch.h"
#include "ditgen/io/png.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/io/video.h"
#include "ditgen/models/conversions.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/model_file.h"
#include "ditgen/nn/video_tokens.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/sampling/denoise.h"
#include "ditgen/sampling/frame_noise.h"
#include "ditgen/text/tokenizer.h"
#include "ditgen/train/train_config.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

// The text tests' random image model of `kind` made a video model as the golden script makes it: clips of 4
// frames, temporal positions added whole (gate 1); a PT-DiT gets 2 x 2 windows a frame spanning 2 frames.
DiT video_model(const std::string& kind) {
  LoadedModel image = load_model(golden("tiny_text_" + kind + ".model.safetensors"), at::kCPU, at::kFloat);
  if (kind == "ptdit") {
    DiTConfig c = image.info.config;
    c.proxy.windows = 2;  // windows are no weights: a config choice
    DiT rewindowed(c);
    at::NoGradGuard no_grad;
    const auto weights = image.model->named_parameters();
    for (auto& p : rewindowed->named_parameters()) p.value().copy_(weights[p.key()]);
    image.model = rewindowed;
  }
  DiT video = make_video(image.model, 4, 2);
  at::NoGradGuard no_grad;
  video->temporal_pos_gate.fill_(1);  // the golden script adds the temporal positions whole
  video->eval();
  return video;
}

// video_model(kind) as a loaded model file, for a Generator.
LoadedModel loaded_video_model(const std::string& kind) {
  LoadedModel loaded = load_model(golden("tiny_text_" + kind + ".model.safetensors"), at::kCPU, at::kFloat);
  loaded.model = video_model(kind);
  loaded.info.config = loaded.model->config();
  return loaded;
}

// Two guided 8x8 clips, seeds 3 and 4, DDIM with `steps` steps.
GenerationRequest two_clips(int steps) {
  GenerationRequest r;
  r.prompts = {"a red bag in the top", "a blue sneaker"};
  r.seeds = {3, 4};
  r.sampler = {"ddim", steps, 0.0};
  r.guidance.scale = 2.0;
  r.height = r.width = 8;
  r.allow_untrained_size = true;
  return r;
}

// The golden clips: drawn, as the script draws them, from the generator seeded 5050.
at::Tensor golden_clip(int frames) {
  at::Generator g = at::detail::createCPUGenerator(5050);
  return at::randn({2, 3, frames, 8, 8}, g);
}

}  // namespace

TEST_CASE("clips become frame-major tokens and back, and frame 0 has an image's positions", "[video][tokens]") {
  const at::Tensor clip = at::arange(2 * 3 * 4 * 5 * 6, at::kFloat).view({2, 3, 4, 5, 6});
  const at::Tensor images = nn::frames_as_batch(clip);  // [8, 3, 5, 6]
  CHECK(images.sizes() == at::IntArrayRef({8, 3, 5, 6}));
  CHECK(images[1 * 4 + 2].equal(clip.select(0, 1).select(1, 2)));  // clip 1, frame 2
  CHECK(nn::batch_as_frames(images, 4).equal(clip));
  const at::Tensor time = nn::temporal_pos_embed(16, 5);  // [5, 16]
  CHECK(time.sizes() == at::IntArrayRef({5, 16}));
  CHECK(time[0].abs().max().item<double>() == 0);
  CHECK(time[1].abs().max().item<double>() > 0.1);
  CHECK(max_abs_diff(time[3] - time[2], time[2] - time[1]) > 1e-3);  // positions, not a linear ramp
}

TEST_CASE("the dense and PT-DiT video backbones match the PyTorch reference", "[video][golden]") {
  auto g = io::load_tensors(golden("video.safetensors"));
  at::NoGradGuard no_grad;
  const at::Tensor ids = at::zeros({2, 8}, at::kLong);
  ids.select(1, 0).fill_(1);
  ids[0].narrow(0, 1, 6).copy_(at::arange(2, 8, at::kLong));  // "a red bag in the top" and the empty prompt
  const at::Tensor t = at::tensor(std::vector<int64_t>{10, 900});
  for (const auto& [name, kind, frames] : std::vector<std::tuple<std::string, std::string, int>>{
           {"dit.f4", "dit", 4}, {"ptdit.f4", "ptdit", 4}, {"ptdit.f2", "ptdit", 2}}) {
    DiT model = video_model(kind);
    const at::Tensor x = golden_clip(frames), &want = g.at(name + ".out");
    const at::Tensor out = model->forward_reference(x, t, ids);
    REQUIRE(out.sizes() == at::IntArrayRef({2, 6, frames, 8, 8}));
    INFO(name << ": max abs error " << max_abs_diff(out, want));
    CHECK(max_abs_diff(out, want) <= 1e-5);
    CHECK(max_abs_diff(model->forward_fused(x, t, ids), want) <= 1e-5);
    // Frames see each other: changing the last frame changes the first frame's prediction.
    at::Tensor changed = x.clone();
    changed.select(2, frames - 1).add_(1.0);
    CHECK(max_abs_diff(model->forward_reference(changed, t, ids).select(2, 0), out.select(2, 0)) > 1e-4);
  }
}

TEST_CASE("on the GPU, the video backbones' fused forwards match the reference and captured clips match eager",
          "[video][cuda]") {
  if (test::no_cuda_device()) return;
  auto g = io::load_tensors(golden("video.safetensors"));
  at::NoGradGuard no_grad;
  const at::Tensor ids = at::ones({2, 8}, at::kLong), t = at::tensor(std::vector<int64_t>{10, 900});
  for (const std::string kind : {"dit", "ptdit"}) {
    LoadedModel loaded = loaded_video_model(kind);
    const at::Tensor x = golden_clip(4);
    const at::Tensor want = loaded.model->forward_reference(x, t, ids);
    loaded.model->to(at::kCUDA);
    INFO(kind);
    CHECK(test::close_relative(loaded.model->forward(x.cuda(), t.cuda(), ids.cuda()).cpu(), want, 1e-4));
    Generator generator(loaded, at::kCUDA, at::kFloat);
    const GenerationRequest r = two_clips(4);
    REQUIRE(generator.generate(r).frames.sizes() == at::IntArrayRef({2, 4, 3, 8, 8}));
    test::check_captured_matches_eager(generator, r);
  }
}

TEST_CASE("an image model starts a video model that draws each still frame as the image model does",
          "[video][conversion]") {
  at::NoGradGuard no_grad;
  for (const std::string kind : {"dit", "ptdit"}) {
    LoadedModel image = load_model(golden("tiny_text_" + kind + ".model.safetensors"), at::kCPU, at::kFloat);
    image.model->eval();
    DiT video = make_video(image.model, 4, 2);
    video->eval();
    CHECK(video->config().input_frames == 4);
    CHECK(video->temporal_pos_gate.eq(kTemporalGateStart).all().item<bool>());
    CHECK(test::parameter_count(*video) == test::parameter_count(*image.model) + image.info.config.hidden_size);
    at::Generator g = at::detail::createCPUGenerator(1);
    const int size = image.info.config.input_height;
    const at::Tensor x = at::randn({2, 3, size, size}, g), t = at::tensor(std::vector<int64_t>{5, 500});
    const at::Tensor ids = at::ones({2, 8}, at::kLong);
    // A one-frame clip is the image.
    const at::Tensor still = video->forward(x.unsqueeze(2), t, ids);  // [2, 6, 1, H, W]
    CHECK(max_abs_diff(still.squeeze(2), image.model->forward(x, t, ids)) <= 1e-6);
    CHECK(error_kind([&] { make_video(video, 8, 2); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { make_video(image.model, 1, 1); }) == ErrorKind::Usage);
  }
}

TEST_CASE("new words start as the known words they are given", "[video][conversion]") {
  at::NoGradGuard no_grad;
  LoadedModel image = load_model(golden("tiny_text_dit.model.safetensors"), at::kCPU, at::kFloat);
  const std::vector<std::string> known = image.info.config.text.vocabulary;
  DiT video = make_video(image.model, 4, 2, {"moving", "upwards"});
  start_words_as(video, {{"moving", known[1]}, {"upwards", known[2]}});
  const at::Tensor& table = video->text_encoder->token_embedding->weight;  // [2 + V, W]
  const int64_t moving = text::kFirstWordId + static_cast<int64_t>(known.size());
  CHECK(table[moving].equal(table[text::kFirstWordId + 1]));
  CHECK(table[moving + 1].equal(table[text::kFirstWordId + 2]));
  CHECK_FALSE(table[moving].equal(table[moving + 1]));
  // The known words keep their embeddings.
  const at::Tensor& before = image.model->text_encoder->token_embedding->weight;
  CHECK(table.narrow(0, 0, before.size(0)).equal(before));
  CHECK(error_kind([&] { start_words_as(video, {{"moving", "flying"}}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { start_words_as(video, {{"flying", "moving"}}); }) == ErrorKind::Usage);
  LoadedModel classes = load_model(golden("tiny_dense10.model.safetensors"), at::kCPU, at::kFloat);
  CHECK(error_kind([&] { start_words_as(classes.model, {{"a", "a"}}); }) == ErrorKind::Usage);
}

TEST_CASE("video configs round-trip, count every frame, and refuse what clips cannot do", "[video][config]") {
  DiT video = video_model("ptdit");
  const DiTConfig& c = video->config();
  const DiTConfig back = config_from_json(to_json(c));
  CHECK(back.input_frames == 4);
  CHECK(back.proxy.window_frames == 2);
  CHECK_FALSE(to_json(load_model(golden("tiny_text_dit.model.safetensors"), at::kCPU, at::kFloat).info.config)
                  .contains("input_frames"));  // image model files stay as they were
  // A clip's cost grows with its frames; a PT-DiT's mixing stays linear in them.
  CHECK(dit_gflops(c, 8, 8, 0, false, 0, 4) > 3 * dit_gflops(c, 8, 8, 0, false, 0, 1));  // the prompt's cost is once
  DiTConfig dense = c;
  dense.proxy = {};
  CHECK(dit_gflops(dense, 64, 64, 0, false, 0, 64) / dit_gflops(dense, 64, 64, 0, false, 0, 32) >
        dit_gflops(c, 64, 64, 0, false, 0, 64) / dit_gflops(c, 64, 64, 0, false, 0, 32));
  // Frames the windows do not divide, and backbones that make images only.
  CHECK(error_message([&] { c.check_frames(3); }) ==
        "this PT-DiT's windows span 2 frames: the frame count must be a multiple of 2");
  DiTConfig ssm = c;
  ssm.proxy = {};
  ssm.ssm.state_size = 8;
  CHECK(error_kind([&] { ssm.validate(ErrorKind::Model); }) == ErrorKind::Model);
  ssm.input_frames = 1;
  CHECK(error_kind([&] { ssm.check_frames(4); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { run_frames(ssm, 4); }) == ErrorKind::Usage);
  CHECK(error_message([&] { run_frames(load_model(golden("tiny_text_dit.model.safetensors"), at::kCPU,
                                                  at::kFloat).info.config, 4); }) ==
        "this is an image model: it makes no clips (frames need a video model)");
}

TEST_CASE("a clip's frames share the noise the model says, in its file and its samples", "[video][noise]") {
  // Independent noise is at::randn's, for images and clips alike; shared noise keeps every frame N(0, I).
  at::Generator g = at::detail::createCPUGenerator(11), same = at::detail::createCPUGenerator(11);
  CHECK(at::equal(sampling::frame_noise({2, 3, 8, 8}, g, 0), at::randn({2, 3, 8, 8}, same)));
  at::Generator a = at::detail::createCPUGenerator(12), b = at::detail::createCPUGenerator(12);
  const at::Tensor shared = sampling::frame_noise({2, 8, 64, 64}, a, 0.5);  // [C, F, H, W]
  CHECK(at::equal(shared, sampling::frame_noise({2, 8, 64, 64}, b, 0.5)));  // seeded
  const at::Tensor frames = shared.transpose(0, 1).reshape({8, -1});       // [F, C H W]
  CHECK(at::allclose(frames.var(1), at::ones({8}), 0, 0.06));
  const at::Tensor correlation = at::corrcoef(frames);                     // [F, F]
  CHECK(at::allclose(correlation - at::eye(8), 0.5 * (at::ones({8, 8}) - at::eye(8)), 0, 0.05));
  for (double bad : {-0.1, 1.0, std::nan("")}) CHECK(error_kind([&] { sampling::frame_noise({1, 2, 4, 4}, a, bad); }) == ErrorKind::Usage);
  sampling::NoiseSource images{{at::detail::createCPUGenerator(13)}, 0.5};
  at::Generator plain = at::detail::createCPUGenerator(13);
  CHECK(at::equal(images.draw({3, 8, 8}), at::randn({1, 3, 8, 8}, plain)));  // an image has no frames to share

  // The model's file keeps it; images and correlations of 1 or more are refused.
  LoadedModel loaded = loaded_video_model("dit");
  DiTConfig c = loaded.info.config;
  CHECK(c.frame_noise_correlation == 0);
  CHECK_FALSE(to_json(c).contains("frame_noise_correlation"));
  c.frame_noise_correlation = 0.5;
  CHECK(config_from_json(to_json(c)).frame_noise_correlation == 0.5);
  c.frame_noise_correlation = 1;
  CHECK(error_kind([&] { c.validate(ErrorKind::Model); }) == ErrorKind::Model);
  c.frame_noise_correlation = 0.5;
  c.input_frames = 1;
  CHECK(error_message([&] { c.validate(ErrorKind::Model); }) ==
        "invalid model config: frame_noise_correlation is for video models (input_frames > 1)");

  // Sampling starts from the shared noise (and DDPM's steps draw it too): the clip is the one drawn from
  // NoiseSource's noise, not from independent noise.
  DiT image = load_model(golden("tiny_text_dit.model.safetensors"), at::kCPU, at::kFloat).model;
  DiT shared_model = make_video(image, 4, 2, {}, 0.5);
  shared_model->eval();
  CHECK(shared_model->config().frame_noise_correlation == 0.5);
  loaded.model = shared_model;
  loaded.info.config = shared_model->config();
  Generator generator(std::move(loaded), at::kCPU, at::kFloat);
  GenerationRequest r = two_clips(2);
  const at::Tensor clips = generator.generate(generator.resolve(r)).frames;  // [N, F, C, H, W]
  sampling::NoiseSource seeded{{at::detail::createCPUGenerator(3), at::detail::createCPUGenerator(4)}, 0.5};
  r.init_noise = seeded.draw({3, 4, 8, 8});  // [N, C, F, H, W]
  CHECK(max_abs_diff(generator.generate(generator.resolve(r)).frames, clips) == 0);
  sampling::NoiseSource independent{{at::detail::createCPUGenerator(3), at::detail::createCPUGenerator(4)}, 0};
  r.init_noise = independent.draw({3, 4, 8, 8});
  CHECK(max_abs_diff(generator.generate(generator.resolve(r)).frames, clips) > 1e-3);
}

TEST_CASE("a video model generates seeded clips through guidance and both sampler families", "[video][generate]") {
  Generator generator(loaded_video_model("dit"), at::kCPU, at::kFloat);
  GenerationRequest r = two_clips(3);
  const GenerationResult clips = generator.generate(generator.resolve(r));
  REQUIRE(clips.frames.sizes() == at::IntArrayRef({2, 4, 3, 8, 8}));  // [N, F, C, H, W]
  CHECK(at::isfinite(clips.frames).all().item<bool>());
  // Each clip is its seed's, whatever its batch (up to the rounding of other batch sizes' matmuls, relative
  // to random weights' large samples); frames of one clip differ (the noise is per frame).
  const double tol = 1e-6 * clips.frames.abs().max().item<double>();
  r.prompts = {"a blue sneaker"};
  r.seeds = {4};
  CHECK(max_abs_diff(generator.generate(generator.resolve(r)).frames[0], clips.frames[1]) <= tol);
  CHECK(max_abs_diff(clips.frames[0][0], clips.frames[0][1]) > 1e-3);
  // Stochastic sampling draws its step noise in the clip's shape too; a shorter clip runs as asked.
  r.sampler = {"ddpm", 3, 0.0};
  r.frames = 2;
  CHECK(generator.generate(generator.resolve(r)).frames.sizes() == at::IntArrayRef({1, 2, 3, 8, 8}));
  r.keep_trajectory = true;
  CHECK(error_kind([&] { generator.resolve(r); }) == ErrorKind::Usage);
  r.keep_trajectory = false;
  r.frames = -1;
  CHECK(error_kind([&] { generator.resolve(r); }) == ErrorKind::Usage);
}

TEST_CASE("the CLI writes a video model's clips as the output name says, replays them and refuses bad requests",
          "[video][cli]") {
  test::TempDir dir;
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/scenes-video-tiny.yaml";
  REQUIRE(test::run_cli({"init", spec, "-o", "video.safetensors", "--seed", "3"}, dir.path()).exit_code == 0);
  const std::string prompt = "a red bag moving left and a blue sneaker moving up";
  const std::vector<std::string> run{"generate", "-m", "video.safetensors", prompt, "-s", "7", "--steps", "2"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = run;
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args, dir.path());
  };
  // GIF (no FFmpeg needed): the model's 4 frames at the given rate, the full record inside.
  test::CliResult gif = with({"-o", "clip.gif", "--fps", "5", "--grid", "strip.png"});
  INFO(gif.err);
  REQUIRE(gif.exit_code == 0);
  const io::VideoClip clip = io::read_video(dir / "clip.gif");
  CHECK(clip.frames == 4);
  CHECK((clip.width == 64 && clip.height == 64));
  const nlohmann::json record = read_generation_record(dir / "clip.gif");
  CHECK(record.at("prompt") == prompt);
  CHECK(record.at("frames") == 4);
  CHECK(record.at("fps") == 5);
  CHECK(io::read_png(dir / "strip.png").width == 4 * 64 + 3);  // one row: the clip's 4 frames
  CHECK(test::contains(test::run_cli({"metadata", "clip.gif"}, dir.path()).out, "Replay: ditgen generate --from clip.gif"));
  // --from makes the same clip again, beside it.
  REQUIRE(test::run_cli({"generate", "--from", "clip.gif"}, dir.path()).exit_code == 0);
  CHECK(io::read_video(dir / "clip-replay.gif").pixels == clip.pixels);
  // A folder of PNG frames, and a longer clip than the model's own; resume skips what is complete.
  REQUIRE(with({"-o", "frames", "--format", "png", "--frames", "6"}).exit_code == 0);
  CHECK(io::read_video(dir / "frames").frames == 6);
  test::CliResult again = with({"-o", "frames", "--format", "png", "--frames", "6", "--resume"});
  CHECK(again.exit_code == 0);
  CHECK(test::contains(again.err, "already complete"));
  if (io::video_format_supported(io::VideoFormat::Mp4)) {
    REQUIRE(with({"-o", "clip.mp4"}).exit_code == 0);
    CHECK(io::read_video(dir / "clip.mp4").frames == 4);
    CHECK(read_generation_record(dir / "clip.mp4").at("seed") == 7);
  }
  // Refused before any compute, nothing written: no frames, an unknown container, a name that is no clip, an
  // output under a file; clips from an image model; the default model when a clip is asked for is a video one.
  CHECK(with({"-o", "zero.gif", "--frames", "0"}).exit_code == 2);
  CHECK(with({"-o", "bad.avi"}).exit_code == 2);
  CHECK(with({"-o", "bad.gif", "--format", "webm"}).exit_code == 2);
  CHECK(with({"-o", "clip.gif/inside.gif"}).exit_code != 0);
  for (const char* left : {"zero.gif", "bad.avi", "bad.gif", "clip.gif/inside.gif"})
    CHECK_FALSE(std::filesystem::exists(dir / left));
  REQUIRE(test::run_cli({"init", std::string(DITGEN_TEST_DATA) + "/../../configs/models/scenes-tiny.yaml", "-o",
                         "image.safetensors"}, dir.path()).exit_code == 0);
  test::CliResult image = test::run_cli({"generate", "-m", "image.safetensors", "a red bag in the center", "-o",
                                         "still.gif", "--steps", "1"}, dir.path());
  CHECK(image.exit_code == 2);
  CHECK(test::contains(image.err, "need a video model"));
  test::CliResult frames = test::run_cli({"generate", "-m", "image.safetensors", "a red bag in the center",
                                          "--frames", "4", "--steps", "1"}, dir.path());
  CHECK(frames.exit_code == 2);
  CHECK(test::contains(frames.err, "this is an image model: it makes no clips"));
}

TEST_CASE("an image text model becomes a video model and trains on moving scenes", "[video][train]") {
  if (test::fashion_mnist_missing("video training")) return;
  test::TempDir dir;
  const std::string yaml = test::train_recipe("scenes-video-tiny-cpu");
  { std::ofstream(dir / "run.yaml") << yaml; }
  test::CliResult trained = test::run_cli({"train", "run.yaml"}, dir.path());
  INFO(trained.err);
  REQUIRE(trained.exit_code == 0);
  CHECK(test::contains(trained.err, "captioned clips"));
  const LoadedModel m = load_model(dir / "runs/scenes-video-tiny-cpu/model.safetensors", at::kCPU, at::kFloat);
  CHECK(m.info.config.input_frames == 4);
  CHECK(m.info.config.frame_noise_correlation == 0.5);  // the recipe's video.noise_correlation
  const std::vector<std::string>& words = m.info.config.text.vocabulary;
  CHECK(words.front() == "a");  // the image model's words first, their ids kept
  CHECK(std::find(words.begin(), words.end(), "moving") != words.end());
  // New words started as the known words nearest in meaning (data::moving_word_starts), and 4 steps at lr 1e-3
  // moved them little.
  auto embedding = [&](const std::string& word) {
    const auto id = text::kFirstWordId + (std::find(words.begin(), words.end(), word) - words.begin());
    return m.model->text_encoder->token_embedding->weight[id];
  };
  CHECK(max_abs_diff(embedding("moving"), embedding("in")) <= 0.01);
  CHECK(max_abs_diff(embedding("upwards"), embedding("top")) <= 0.01);
  CHECK(max_abs_diff(embedding("moving"), embedding("top")) > 0.05);
  CHECK(std::filesystem::exists(dir / "runs/scenes-video-tiny-cpu/samples"));
  // The trained model makes clips from a sentence.
  CHECK(test::run_cli({"generate", "-m", "runs/scenes-video-tiny-cpu/model.safetensors", "a red bag moving left",
                       "--steps", "1", "-o", "clip.gif"}, dir.path()).exit_code == 0);
  CHECK(io::read_video(dir / "clip.gif").frames == 4);

  // A video model keeps the noise it trained with: another correlation is refused before any step.
  std::string other_noise = yaml;
  other_noise.replace(other_noise.find("runs/scenes-video-tiny-cpu"), 26, "runs/other-noise");
  other_noise.replace(other_noise.find("noise_correlation: 0.5"), 22, "noise_correlation: 0.3");
  other_noise.replace(other_noise.find("model: "), 7, "model: runs/scenes-video-tiny-cpu/model.safetensors\n# ");
  { std::ofstream(dir / "other-noise.yaml") << other_noise; }
  test::CliResult refused = test::run_cli({"train", "other-noise.yaml"}, dir.path());
  CHECK(refused.exit_code == 2);
  CHECK(test::contains(refused.err, "video.noise_correlation 0.3 differs from the video model's frame_noise_correlation 0.5"));
  CHECK_FALSE(std::filesystem::exists(dir / "runs/other-noise/model.safetensors"));
  std::string out_of_range = yaml;
  out_of_range.replace(out_of_range.find("noise_correlation: 0.5"), 22, "noise_correlation: 1.0");
  { std::ofstream(dir / "bad.yaml") << out_of_range; }
  CHECK(error_kind([&] { train::load_train_config(dir / "bad.yaml"); }) == ErrorKind::Input);

  // A proxy section makes the dense model a PT-DiT first (make_proxy), whose windows then span frames.
  std::string proxy_yaml = yaml;
  proxy_yaml.replace(proxy_yaml.find("runs/scenes-video-tiny-cpu"), 26, "runs/proxy");
  proxy_yaml += "proxy: {windows: 2, depth: 1}\n";
  { std::ofstream(dir / "proxy.yaml") << proxy_yaml; }
  test::CliResult proxy_run = test::run_cli({"train", "proxy.yaml"}, dir.path());
  INFO(proxy_run.err);
  REQUIRE(proxy_run.exit_code == 0);
  const LoadedModel p = load_model(dir / "runs/proxy/model.safetensors", at::kCPU, at::kFloat);
  CHECK(p.info.config.proxy.windows == 2);
  CHECK(p.info.config.depth == 1);
  CHECK(p.info.config.input_frames == 4);
  for (const std::string bad : {"proxy: {depth: 1}\n", "proxy: {windows: 0}\n", "proxy: {windows: 2, speed: 1}\n",
                                "proxy: {windows: 2, depth: -1}\n", "proxy: 2\n"}) {
    INFO(bad);
    { std::ofstream(dir / "bad.yaml") << yaml + bad; }
    CHECK(error_kind([&] { train::load_train_config(dir / "bad.yaml"); }) == ErrorKind::Input);
  }
}

TEST_CASE("eval on a video model runs the moving-scene benchmark beside its real-clip ceiling", "[video][eval]") {
  if (test::fashion_mnist_missing("the moving-scene benchmark")) return;
  test::TempDir dir;
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/scenes-video-tiny.yaml";
  REQUIRE(test::run_cli({"init", spec, "-o", "video.safetensors", "--seed", "5"}, dir.path()).exit_code == 0);
  test::CliResult r = test::run_cli({"eval", "-m", "video.safetensors", "-n", "4", "--steps", "1", "--batch-size", "2",
                                     "--device", "cpu", "--progress", "none"},
                                    dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const nlohmann::json& scenes = j.at("scenes");
  CHECK(scenes.at("frames") == 4);
  CHECK(scenes.at("clips") == 4);
  CHECK(scenes.at("prompts") == 4);
  // The first benchmark prompts hold 1 and 2 items in turn: 6 items; real clips show every direction.
  CHECK(scenes.at("generated").at("items").at("total") == 6);
  CHECK(scenes.at("ceiling").at("item_direction").at("accuracy") == 1.0);
  for (const char* key : {"ratio", "held_out_over_seen", "direction_accuracy", "class_consistency", "frechet"})
    CHECK(scenes.contains(key));
  CHECK(j.at("fid") == scenes.at("frechet").at("distance"));
  CHECK(j.at("num_samples") == 4);
}
