// Text conditioning: the tokenizer, text configs, every backbone's text path against golden tensors from
// scripts/make_golden_text.py (our PyTorch reference, scripts/reference/text_reference.py), the empty prompt
// as the null condition, and generation from prompts through the library.
#include <fstream>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/eval/scene_eval.h"
#include "ditgen/io/png.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/conversions.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/sampling/guidance.h"
#include "ditgen/text/tokenizer.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

const std::vector<std::string> kWords{"a", "red", "bag", "in", "the", "top", "left", "and", "blue", "sneaker", "bottom", "right"};

std::vector<int64_t> ids_of(const text::Tokens& t) { return t.ids; }

// The golden file's model of a backbone kind.
LoadedModel text_model(const std::string& kind) {
  return load_model(golden("tiny_text_" + kind + ".model.safetensors"), at::kCPU, at::kFloat);
}

}  // namespace

TEST_CASE("prompts split into lowercase words and known words become ids", "[text][tokenizer]") {
  CHECK(text::split_words("A Red T-shirt, top-left!") == std::vector<std::string>{"a", "red", "t-shirt", "top-left"});
  CHECK(text::split_words("  'quoted'  --dash-- o'clock ") == std::vector<std::string>{"quoted", "dash", "o'clock"});
  CHECK(text::split_words("caf\xc3\xa9 au lait").front() == "caf\xc3\xa9");  // non-ASCII stays in its (unknown) word
  CHECK(text::split_words("").empty());

  const text::Tokenizer tok(kWords, 8);
  const text::Tokens t = tok.encode("A red BAG in the top");
  CHECK(ids_of(t) == std::vector<int64_t>{text::kStartId, 2, 3, 4, 5, 6, 7});
  CHECK(t.unknown.empty());
  CHECK(tok.decode(t.ids) == "a red bag in the top");
  CHECK(ids_of(tok.encode(tok.decode(t.ids))) == t.ids);  // round trip
  // "top-left" counts as its known parts; the empty prompt is the start id alone.
  CHECK(ids_of(tok.encode("top-left")) == std::vector<int64_t>{text::kStartId, 7, 8});
  CHECK(ids_of(tok.encode("")) == std::vector<int64_t>{text::kStartId});
  const at::Tensor batch = tok.encode_batch({"red bag", ""});  // [2, 8]
  CHECK(batch.sizes() == at::IntArrayRef({2, 8}));
  CHECK(batch[0].equal(at::tensor(std::vector<int64_t>{1, 3, 4, 0, 0, 0, 0, 0})));
  CHECK(batch[1].equal(at::tensor(std::vector<int64_t>{1, 0, 0, 0, 0, 0, 0, 0})));
}

TEST_CASE("words the model never learned are listed once and ignored, long prompts are refused", "[text][tokenizer]") {
  const text::Tokenizer tok(kWords, 8);
  const text::Tokens t = tok.encode("a purple bag, a purple hat in the top-middle");
  CHECK(t.unknown == std::vector<std::string>{"purple", "hat", "top-middle"});
  CHECK(ids_of(t) == ids_of(tok.encode("a bag a in the")));
  // Seven known words fit a model reading 8 tokens (the start token is one); eight do not.
  CHECK_NOTHROW(tok.encode("a red bag in the top left"));
  CHECK(error_kind([&] { tok.encode("a red bag in the top left and"); }) == ErrorKind::Usage);
  CHECK(error_message([&] { tok.encode("a red bag in the top left and"); }) ==
        "the prompt has 8 words this model knows; it reads at most 7");
  CHECK_NOTHROW(tok.encode("a red bag in the top left, whatever else unknown words say"));
}

TEST_CASE("text configs round-trip and bad vocabularies are refused", "[text][config]") {
  LoadedModel m = text_model("dit");
  const DiTConfig& c = m.info.config;
  REQUIRE(c.text.enabled());
  CHECK(c.text.vocabulary == kWords);
  CHECK(c.text.max_tokens == 8);
  CHECK(c.num_classes == 0);
  CHECK(config_from_json(to_json(c)).text.vocabulary == kWords);
  auto refused = [&](const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json j = to_json(c);
    change(j);
    return error_message([&] { config_from_json(j); });
  };
  CHECK(test::contains(refused([](auto& j) { j["text"]["vocabulary"].push_back("red"); }), "repeats 'red'"));
  CHECK(test::contains(refused([](auto& j) { j["text"]["vocabulary"].push_back("Red"); }), "lowercase"));
  CHECK(test::contains(refused([](auto& j) { j["text"]["vocabulary"].push_back("two words"); }), "lowercase"));
  CHECK(test::contains(refused([](auto& j) { j["text"]["vocabulary"] = nlohmann::json::array(); }), "1..65536 words"));
  CHECK(test::contains(refused([](auto& j) { j["text"]["heads"] = 3; }), "text.heads must divide text.width"));
  CHECK(test::contains(refused([](auto& j) { j["text"]["max_tokens"] = 1; }), "text.max_tokens"));
  CHECK(test::contains(refused([](auto& j) { j["num_classes"] = 10; }), "a text model has num_classes 0"));
  nlohmann::json words_not_strings = to_json(c);
  words_not_strings["text"]["vocabulary"] = {1, 2};
  CHECK(error_kind([&] { config_from_json(words_not_strings); }) == ErrorKind::Model);
}

TEST_CASE("the text encoder and every backbone's text path match the PyTorch reference", "[text][golden]") {
  auto g = io::load_tensors(golden("text.safetensors"));
  at::NoGradGuard no_grad;
  const at::Tensor& ids = g.at("ids");
  {
    LoadedModel m = text_model("dit");
    const text::TextCondition encoded = m.model->text_encoder->forward(ids);
    CHECK(max_abs_diff(encoded.tokens.states, g.at("encoder.states")) <= 1e-5);
    CHECK(max_abs_diff(encoded.pooled, g.at("encoder.pooled")) <= 1e-5);
    CHECK(encoded.tokens.mask.equal(ids != text::kPadId));
  }
  for (const std::string kind : {"dit", "sparsedit", "ptdit", "diffussm"}) {
    LoadedModel m = text_model(kind);
    const at::Tensor &x = g.at(kind + ".x"), &t = g.at(kind + ".t"), &want = g.at(kind + ".out");
    const int grid = kind == "sparsedit" ? 3 : 0;
    const at::Tensor reference = m.model->forward_reference(x, t, ids, 0, grid);
    INFO(kind << ": max abs error " << max_abs_diff(reference, want));
    CHECK(max_abs_diff(reference, want) <= 1e-5);
    CHECK(max_abs_diff(m.model->forward_fused(x, t, ids, 0, grid), want) <= 1e-5);
    // The prompt matters: the same images with both rows' prompts swapped differ.
    CHECK(max_abs_diff(m.model->forward_reference(x, t, ids.flip(0), 0, grid), want) > 1e-3);
  }
  // FlexiDiT: the dense text model made flexible, at each patch size.
  LoadedModel dense = text_model("dit");
  FlexConfig flex;
  flex.patch_sizes = {1, 2, 4};
  flex.underlying_patch = 4;
  DiT flexible = make_flexible(dense.model, flex);
  flexible->eval();
  flexible->flex->patch_size_embed.copy_(g.at("flexidit.patch_size_embed"));
  for (int p : {1, 2, 4}) {
    const at::Tensor out = flexible->forward(g.at("dit.x"), g.at("dit.t"), ids, p);
    INFO("flexible, patch " << p << ": max abs error " << max_abs_diff(out, g.at(c10::str("flexidit.out_", p))));
    CHECK(max_abs_diff(out, g.at(c10::str("flexidit.out_", p))) <= 1e-5);
  }
}

TEST_CASE("text models count their encoder and text attention in parameters and FLOPs", "[text][cost]") {
  for (const std::string kind : {"dit", "sparsedit", "ptdit", "diffussm"}) {
    LoadedModel m = text_model(kind);
    INFO(kind);
    CHECK(dit_parameter_count(m.info.config) == test::parameter_count(*m.model));
    DiTConfig without = m.info.config;
    without.text = {};
    without.num_classes = 1;
    without.class_dropout_prob = 0;
    CHECK(dit_gflops(m.info.config, without.input_height, without.input_width, 0, false, 0) >
          dit_gflops(without, without.input_height, without.input_width, 0, false, 0));
  }
}

TEST_CASE("the empty prompt is the null condition, and a fresh text model starts with silent text attention",
          "[text][guidance]") {
  LoadedModel m = text_model("dit");
  const DiTConfig& c = m.info.config;
  const text::Tokenizer tok(c.text.vocabulary, c.text.max_tokens);
  const at::Tensor null_y = sampling::unconditional(c, {}, 3, at::TensorOptions().dtype(at::kLong));  // [3, L]
  CHECK(null_y.sizes() == at::IntArrayRef({3, c.text.max_tokens}));
  for (int i = 0; i < 3; ++i) CHECK(null_y[i].equal(tok.padded(tok.encode("").ids)));
  const at::Tensor negative = tok.padded(tok.encode("blue bag").ids);
  CHECK(sampling::unconditional(c, {}, 2, null_y.options(), negative)[1].equal(negative));
  sampling::Guidance by_class;
  by_class.negative_label = 2;
  CHECK(error_kind([&] { sampling::validate_guidance(by_class, c); }) == ErrorKind::Usage);

  DiT fresh(c);
  fresh->initialize_weights();
  for (const auto& item : fresh->named_parameters())
    if (item.key().find("text_cross.proj") != std::string::npos) CHECK(item.value().abs().max().item<double>() == 0);
}

TEST_CASE("a text model generates from prompts, lists unknown words and refuses what it cannot read",
          "[text][generate]") {
  Generator generator(golden("tiny_text_dit.model.safetensors"), at::kCPU, at::kFloat);
  GenerationRequest r;
  r.prompts = {"a red bag in the top left", "a red mystery bag"};
  r.seeds = {1, 2};
  r.sampler.steps = 2;
  r.guidance.scale = 2.0;
  r.negative_prompt = "blue";
  const ResolvedRequest resolved = generator.resolve(r);
  CHECK(resolved.conditions.sizes() == at::IntArrayRef({2, 8}));
  CHECK(resolved.unknown_words == std::vector<std::vector<std::string>>{{}, {"mystery"}});
  CHECK(resolved.negative_ids.defined());
  const GenerationResult out = generator.generate(resolved);
  CHECK(out.frames.sizes() == at::IntArrayRef({2, 1, 3, 8, 8}));
  // An image is its prompt's and seed's alone: the second again on its own.
  GenerationRequest second = r;
  second.prompts = {r.prompts[1]};
  second.seeds = {2};
  // (up to float rounding: the batch shapes differ; this random model's outputs reach the hundreds)
  const double scale = std::max(1.0, out.frames.abs().max().item<double>());
  CHECK(max_abs_diff(generator.generate(second).frames[0], out.frames[1]) <= 1e-5 * scale);

  GenerationRequest classes = r;
  classes.prompts.clear();
  classes.labels = {1, 2};
  CHECK(error_message([&] { generator.resolve(classes); }) == "this is a text model: give prompts, not class ids");
  GenerationRequest too_long = r;
  too_long.prompts[0] = "a red bag in the top left and a blue sneaker";
  CHECK(error_kind([&] { generator.resolve(too_long); }) == ErrorKind::Usage);
  Generator class_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  CHECK(error_message([&] { class_model.resolve(r); }) == "this model is class-conditional: give class ids, not text prompts");
}

TEST_CASE("the CLI makes RGB images from sentences, replays them and explains what it cannot read", "[text][cli]") {
  test::TempDir dir;
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/scenes-tiny.yaml";
  REQUIRE(test::run_cli({"init", spec, "-o", "text.safetensors", "--seed", "5"}, dir.path()).exit_code == 0);
  const std::string prompt = "a red sneaker in the top left and a blue bag in the bottom right";
  test::CliResult made = test::run_cli(
      {"generate", "-m", "text.safetensors", prompt, "-s", "3", "--steps", "2", "-o", "scene.png"}, dir.path());
  INFO(made.err);
  REQUIRE(made.exit_code == 0);
  const io::Image image = io::read_png(dir / "scene.png");
  CHECK(image.channels == 3);
  CHECK(image.width == 64);
  CHECK(image.height == 64);
  const nlohmann::json record = read_generation_record(dir / "scene.png");
  CHECK(record.at("prompt") == prompt);
  CHECK(record.at("class_id").is_null());
  // --from makes the same pixels again.
  REQUIRE(test::run_cli({"generate", "-m", "text.safetensors", "--from", "scene.png", "-o", "again.png"}, dir.path())
              .exit_code == 0);
  CHECK(io::read_png(dir / "again.png").pixels == image.pixels);

  // Unknown words: a warning naming them, and the image still made.
  test::CliResult unknown = test::run_cli({"generate", "-m", "text.safetensors", "a purple hat in the top left", "-s",
                                           "1", "--steps", "1", "-o", "hat.png"},
                                          dir.path());
  CHECK(unknown.exit_code == 0);
  CHECK(test::contains(unknown.err, "ignoring words this model does not know: 'hat'"));
  // ... and in the negative prompt too.
  test::CliResult negative = test::run_cli({"generate", "-m", "text.safetensors", "a red bag in the center", "--negative",
                                            "a blurry bag", "-s", "1", "--steps", "1", "-o", "negative.png"},
                                           dir.path());
  CHECK(negative.exit_code == 0);
  CHECK(test::contains(negative.err, "ignoring words of the negative prompt this model does not know: 'blurry'"));
  // Too long on the command line: refused before anything is made (exit 2); in a prompt file the line fails
  // alone (exit 6) and the others are made.
  std::string long_prompt;
  for (int i = 0; i < 50; ++i) long_prompt += "red ";
  test::CliResult too_long =
      test::run_cli({"generate", "-m", "text.safetensors", long_prompt, "--steps", "1", "-o", "long.png"}, dir.path());
  CHECK(too_long.exit_code == 2);
  CHECK(test::contains(too_long.err, "the prompt has 50 words this model knows; it reads at most 47"));
  CHECK_FALSE(std::filesystem::exists(dir / "long.png"));
  { std::ofstream(dir / "prompts.txt") << "a red bag in the center\n" << long_prompt << "\n"; }
  test::CliResult file = test::run_cli(
      {"generate", "-m", "text.safetensors", "-f", "prompts.txt", "--steps", "1", "-o", "out/{index}.png"}, dir.path());
  CHECK(file.exit_code == 6);
  CHECK(std::filesystem::exists(dir / "out/0.png"));
  CHECK_FALSE(std::filesystem::exists(dir / "out/1.png"));
  // A class name given to a text model is just a (one-word) prompt; a negative class id is not.
  CHECK(test::run_cli({"generate", "-m", "text.safetensors", "bag", "--negative", "red", "--steps", "1", "-o",
                       "bag.png"},
                      dir.path())
            .exit_code == 0);
  // info shows what the model reads.
  test::CliResult info = test::run_cli({"info", "text.safetensors"}, dir.path());
  CHECK(info.exit_code == 0);
  CHECK(test::contains(info.out, "text prompts of up to 47 words"));
  CHECK(test::contains(info.out, "37 words: a an and are at in is the there"));
}

TEST_CASE("a text model trains on captioned scenes and refuses captions it cannot read", "[text][train]") {
  if (test::fashion_mnist_missing("text training")) return;
  test::TempDir dir;
  const std::string config = std::string(DITGEN_TEST_DATA) + "/../../configs/train/scenes-tiny-cpu.yaml";
  std::string yaml;
  {
    std::ifstream in(config);
    yaml.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string models = std::string(DITGEN_TEST_DATA) + "/../../configs/models/";
  // The recipe with 4 steps and its model spec found from the temporary folder.
  std::string fixed = yaml;
  fixed.replace(fixed.find("steps: 20"), 9, "steps: 4");
  fixed.replace(fixed.find("../models/"), 10, models);
  { std::ofstream(dir / "run.yaml") << fixed; }
  test::CliResult trained = test::run_cli({"train", "run.yaml"}, dir.path());
  INFO(trained.err);
  REQUIRE(trained.exit_code == 0);
  const LoadedModel m = load_model(dir / "runs/scenes-tiny-cpu/model.safetensors", at::kCPU, at::kFloat);
  CHECK(m.info.config.text.enabled());
  CHECK(std::filesystem::exists(dir / "runs/scenes-tiny-cpu/samples"));

  // A vocabulary without "red": refused before training, naming the word.
  std::string spec;
  {
    std::ifstream in(models + "scenes-tiny.yaml");
    spec.assign(std::istreambuf_iterator<char>(in), {});
  }
  spec.replace(spec.find(" red,"), 5, "");
  { std::ofstream(dir / "no-red.yaml") << spec; }
  std::string no_red = fixed;
  no_red.replace(no_red.find(models + "scenes-tiny.yaml"), (models + "scenes-tiny.yaml").size(), (dir / "no-red.yaml").string());
  no_red.replace(no_red.find("runs/scenes-tiny-cpu"), 20, "runs/no-red");
  { std::ofstream(dir / "no-red-run.yaml") << no_red; }
  test::CliResult refused = test::run_cli({"train", "no-red-run.yaml"}, dir.path());
  CHECK(refused.exit_code == 2);
  CHECK(test::contains(refused.err, "the model's vocabulary lacks words the training captions use: red"));
}

TEST_CASE("the shipped text model is the documented one and draws the scenes asked for", "[text][shipped]") {
  if (test::fashion_mnist_missing("the shipped text model's scene check")) return;
  const std::string model = test::shipped_model("scenes-dit.safetensors");
  Generator generator(model, at::kCPU, at::kFloat);
  const DiTConfig& c = generator.info().config;
  CHECK((c.depth == 6 && c.hidden_size == 256 && c.patch_size == 4 && c.in_channels == 3 && c.text.layers == 2));
  CHECK(dit_parameter_count(c) == 8272352);  // models/scenes-dit.md
  // Six benchmark prompts of 1 to 4 items (held-out pairs among them), DDIM 25, CFG 3: an untrained model
  // gets almost no item right; the shipped one most of them.
  const std::vector<std::string> prompts{
      "a red sneaker in the top left and a blue bag in the bottom right", "a green bag in the center",
      "a white sneaker in the top right and a cyan dress in the bottom left",
      "a yellow coat in the top left and a purple ankle boot in the top right and an orange shirt in the bottom "
      "left and a red trouser in the bottom right",
      "a blue sandal in the bottom right", "a purple bag in the bottom left and a yellow trouser in the top right"};
  GenerationRequest r;
  r.prompts = prompts;
  for (size_t i = 0; i < prompts.size(); ++i) r.seeds.push_back(i);
  r.sampler.steps = 25;
  r.guidance.scale = 3.0;
  const at::Tensor images = generator.generate(r).frames.select(1, 0);  // [6, 3, 64, 64]
  std::vector<data::Scene> layouts;
  for (const std::string& p : prompts) layouts.push_back(data::parse_caption(p));
  eval::FmnistClassifier classifier = eval::load_classifier(test::shipped_model("fmnist-classifier.safetensors"), at::kCPU);
  const eval::SceneScores scores = eval::score_scenes(classifier, images, layouts);
  INFO(scores.to_json().dump());
  CHECK(scores.items.total == 12);
  CHECK(scores.items.right >= 10);
  CHECK(scores.item_colour.right == 12);
}

TEST_CASE("eval on a text model runs the scene benchmark and reports it beside the real-scene ceiling", "[text][eval]") {
  if (test::fashion_mnist_missing("the scene benchmark")) return;
  test::TempDir dir;
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/scenes-tiny.yaml";
  REQUIRE(test::run_cli({"init", spec, "-o", "text.safetensors", "--seed", "5"}, dir.path()).exit_code == 0);
  test::CliResult r = test::run_cli({"eval", "-m", "text.safetensors", "-n", "8", "--steps", "1", "--batch-size", "4",
                                     "--device", "cpu", "--progress", "none"},
                                    dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const nlohmann::json& scenes = j.at("scenes");
  CHECK(scenes.at("prompts") == 8);
  CHECK(scenes.at("images_per_prompt") == 1.0);
  // The first 8 benchmark prompts hold 1, 2, 3, 4 items in turn: 20 items.
  CHECK(scenes.at("generated").at("items").at("total") == 20);
  CHECK(scenes.at("ceiling").at("items").at("total") == 20);
  CHECK(scenes.at("ceiling").at("item_colour").at("accuracy") == 1.0);
  for (const char* key : {"ratio", "held_out_over_seen"}) CHECK(scenes.contains(key));
  CHECK(j.at("num_samples") == 8);
  // A class model still gets the Fashion-MNIST evaluation, without scene figures.
  const std::string classes = test::make_tiny_model(dir);
  test::CliResult fmnist = test::run_cli({"eval", "-m", classes, "-n", "4", "--steps", "1", "--device", "cpu",
                                          "--progress", "none"},
                                         dir.path());
  REQUIRE(fmnist.exit_code == 0);
  CHECK_FALSE(nlohmann::json::parse(fmnist.out).contains("scenes"));
}
