// FashionScenes: the grammar's tables, seeded sampling (held-out pairs never in training), captions and their
// parser, rendering against the palette formula, the scene evaluator on real and deliberately wrong scenes,
// and `ditgen scenes` end to end. Cases that read Fashion-MNIST skip where it is not installed.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/scenes.h"
#include "ditgen/eval/classifier.h"
#include "ditgen/eval/scene_eval.h"
#include "ditgen/io/png.h"
#include "helpers.h"

using namespace ditgen;
using namespace ditgen::data;
using ditgen::test::error_kind;
using ditgen::test::error_message;

namespace {

SceneItem item(int colour, int cls, Cell cell) {
  SceneItem i;
  i.colour = colour;
  i.cls = cls;
  i.cell = cell;
  return i;
}

// Scenes with sources, for tests that render: `count` of them from sample_scene(seed + i).
std::vector<Scene> sample_scenes(const ItemPool& pool, int count, uint64_t seed, Pairs pairs = Pairs::Seen) {
  std::vector<Scene> scenes;
  for (int i = 0; i < count; ++i) scenes.push_back(sample_scene(seed + static_cast<uint64_t>(i), pool, pairs));
  return scenes;
}

// The quadrants a scene of quadrant items does not name.
std::vector<Cell> unnamed_quadrants(const Scene& scene) {
  std::vector<Cell> cells;
  for (int q = 0; q < kQuadrants; ++q) {
    const Cell c = static_cast<Cell>(q);
    if (std::none_of(scene.items.begin(), scene.items.end(), [&](const SceneItem& i) { return i.cell == c; }))
      cells.push_back(c);
  }
  return cells;
}

std::string classifier_file() { return test::shipped_model("fmnist-classifier.safetensors"); }

}  // namespace

TEST_CASE("scenes grammar: names, palette and held-out pairs", "[scenes]") {
  CHECK(std::string(cell_name(Cell::BottomRight)) == "bottom right");
  CHECK(item_origin(Cell::TopRight).x == 34);
  CHECK(item_origin(Cell::TopRight).y == 2);
  CHECK(item_origin(Cell::Center).x == 18);
  CHECK(cell_origin(Cell::Center).y == 16);
  CHECK(std::string(class_word(9)) == "ankle boot");
  CHECK(class_from_word("t-shirt") == 0);
  CHECK(colour_from_name("purple") == 6);
  CHECK(!colour_from_name("magenta"));
  CHECK(palette_colour(1).g == 140);
  CHECK(error_kind([] { colour_name(8); }) == ErrorKind::Usage);
  int held = 0;
  for (int colour = 0; colour < kSceneColours; ++colour)
    for (int cls = 0; cls < kSceneClasses; ++cls) held += is_held_out(colour, cls) ? 1 : 0;
  CHECK(held == 8);
  CHECK(is_held_out(3, 8));   // green bag
  CHECK(is_held_out(6, 9));   // purple ankle boot
  CHECK(!is_held_out(0, 7));  // red sneaker
}

TEST_CASE("sampled scenes follow the grammar and training never draws a held-out pair", "[scenes]") {
  std::map<int, int> counts;
  std::set<std::pair<int, int>> held_out_seen;
  int centre = 0;
  for (uint64_t seed = 0; seed < 20000; ++seed) {
    const Scene train = sample_layout(seed, Pairs::Seen);
    REQUIRE_NOTHROW(check_scene(train));
    counts[static_cast<int>(train.items.size())]++;
    for (const SceneItem& i : train.items) {
      REQUIRE(!is_held_out(i.colour, i.cls));
      centre += i.cell == Cell::Center ? 1 : 0;
    }
    for (const SceneItem& i : sample_layout(seed, Pairs::All).items)
      if (is_held_out(i.colour, i.cls)) held_out_seen.insert({i.colour, i.cls});
  }
  for (int k = 1; k <= 4; ++k) CHECK(std::abs(counts[k] - 5000) < 300);
  CHECK(std::abs(centre - 1000) < 150);  // a fifth of the lone items
  CHECK(held_out_seen.size() == 8);
  const Scene a = sample_layout(42), b = sample_layout(42);
  CHECK(canonical_caption(a) == canonical_caption(b));
  CHECK(a.items.front().dx == b.items.front().dx);
  CHECK(canonical_caption(sample_layout(42)) != canonical_caption(sample_layout(43)));
  CHECK(sample_layout(5, 3, Pairs::Seen).items.size() == 3);
  CHECK(error_kind([] { sample_layout(5, 5, Pairs::Seen); }) == ErrorKind::Usage);
}

TEST_CASE("captions of scenes: canonical text, paraphrases, and parsing back", "[scenes]") {
  Scene scene;
  scene.items = {item(0, 7, Cell::TopLeft), item(5, 8, Cell::BottomRight)};
  CHECK(canonical_caption(scene) == "a red sneaker in the top left and a blue bag in the bottom right");
  int canonical = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const Scene layout = sample_layout(seed);
    const Scene parsed = parse_caption(canonical_caption(layout));
    REQUIRE(same_layout(parsed, layout));
    REQUIRE(canonical_caption(parsed) == canonical_caption(layout));  // same order too
    const std::string text = paraphrase(layout, seed * 7 + 1);
    INFO(text);
    REQUIRE(same_layout(parse_caption(text), layout));
    canonical += text == canonical_caption(layout) ? 1 : 0;
  }
  CHECK(std::abs(canonical - 1000) < 80);
  const Scene boot = parse_caption("There is an Orange Ankle Boot in the middle.");
  REQUIRE(boot.items.size() == 1);
  CHECK(boot.items[0].cls == 9);
  CHECK(boot.items[0].colour == 1);
  CHECK(boot.items[0].cell == Cell::Center);
  CHECK(same_layout(parse_caption("white coat in the lower right, red bag in the upper left"),
                    parse_caption("a red bag in the top left and a white coat in the bottom right")));
}

TEST_CASE("scenes parse_caption says what is wrong with a caption", "[scenes]") {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"", "no items"},
      {"a red sneakers in the top left", "unknown item 'sneakers'"},
      {"a magenta bag in the top left", "unknown colour 'magenta'"},
      {"a bag in the top left", "'bag' needs a colour"},
      {"a red sneaker", "expected 'in the POSITION' after 'red sneaker'"},
      {"a red sneaker in the top middle", "expected 'left' or 'right' after 'top'"},
      {"a red sneaker in the top left a blue bag in the bottom left", "expected 'and' or ','"},
      {"a red sneaker in the top left and", "ends with 'and'"},
      {"a red sneaker in the top left and a blue bag in the upper left", "two items in the top left"},
      {"a red bag in the center and a blue bag in the top left", "only a lone item may sit in the center"},
      {"red bag in the top left, red bag in the top right, red bag in the bottom left, red bag in the bottom "
       "right, red bag in the center",
       "more than 4 items"},
  };
  for (const auto& [text, message] : cases) {
    INFO(text);
    CHECK(error_kind([&] { parse_caption(text); }) == ErrorKind::Input);
    CHECK(test::contains(error_message([&] { parse_caption(text); }), message));
  }
}

TEST_CASE("scenes benchmark prompts: fixed, balanced by count, every held-out pair several times", "[scenes]") {
  const std::vector<std::string> prompts = benchmark_prompts();
  REQUIRE(prompts.size() == 2000);
  CHECK(prompts == benchmark_prompts());
  CHECK(prompts.front() == canonical_caption(benchmark_layouts().front()));
  std::map<int, int> by_count;
  std::map<std::pair<int, int>, int> held_out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Scene layout = parse_caption(prompts[i]);
    REQUIRE(same_layout(layout, benchmark_layouts()[i]));
    by_count[static_cast<int>(layout.items.size())]++;
    CHECK(layout.items.size() == i % 4 + 1);
    for (const SceneItem& it : layout.items)
      if (is_held_out(it.colour, it.cls)) held_out[{it.colour, it.cls}]++;
  }
  for (int k = 1; k <= 4; ++k) CHECK(by_count[k] == 500);
  REQUIRE(held_out.size() == 8);
  for (const auto& [pair, n] : held_out) CHECK(n >= 10);
}

TEST_CASE("rendered scenes: deterministic, lit only where named, coloured by the palette formula", "[scenes]") {
  if (test::fashion_mnist_missing("scene rendering")) return;
  const FashionMnist train(default_fashion_mnist_dir(), Split::Train, kItemSize);
  const ItemPool pool(train);
  const std::vector<Scene> scenes = sample_scenes(pool, 48, 100);
  const at::Tensor images = render(scenes, train);  // [48, 3, 64, 64]
  REQUIRE(images.sizes() == at::IntArrayRef({48, 3, 64, 64}));
  CHECK(at::equal(images, render(sample_scenes(pool, 48, 100), train)));
  CHECK(!at::equal(images, render(sample_scenes(pool, 48, 101), train)));
  CHECK(images.min().item<float>() >= -1.0f);
  CHECK(images.max().item<float>() <= 1.0f);
  for (size_t s = 0; s < scenes.size(); ++s) {
    const at::Tensor image = images[static_cast<int64_t>(s)];  // [3, 64, 64]
    const Scene& scene = scenes[s];
    if (scene.items.front().cell == Cell::Center) {
      at::Tensor outside = image.clone();
      outside.narrow(1, 16, 32).narrow(2, 16, 32).fill_(-1);
      CHECK(outside.max().item<float>() == -1.0f);
    } else {
      for (Cell c : unnamed_quadrants(scene)) {
        const Point o = cell_origin(c);
        CHECK(image.narrow(1, o.y, 32).narrow(2, o.x, 32).max().item<float>() == -1.0f);
      }
    }
    for (const SceneItem& it : scene.items) {
      const Point o = item_origin(it.cell);
      const at::Tensor grey = train.get({it.source_index}).images[0][0].add(1).div(2);  // [28, 28] grey / 255
      const Rgb c = palette_colour(it.colour);
      const at::Tensor tint = at::tensor({c.r / 255.0f, c.g / 255.0f, c.b / 255.0f}).view({3, 1, 1});
      const at::Tensor expected = (grey.unsqueeze(0) * tint) * 2 - 1;  // [3, 28, 28]
      const at::Tensor actual = image.narrow(1, o.y + it.dy, 28).narrow(2, o.x + it.dx, 28);
      CHECK(test::max_abs_diff(actual, expected) < 1e-5);
    }
  }
  Scene layout;
  layout.items = {item(0, 1, Cell::TopLeft)};
  CHECK(test::contains(error_message([&] { render(layout, train); }), "needs a source image"));
}

TEST_CASE("ScenesDataset: indexable training scenes with captions", "[scenes]") {
  if (test::fashion_mnist_missing("the scenes dataset")) return;
  const ScenesDataset set(default_fashion_mnist_dir(), Split::Train, 100, 9);
  CHECK(set.size() == 100);
  CHECK(set.channels() == 3);
  const Batch batch = set.get({0, 5, 99});
  CHECK(batch.images.sizes() == at::IntArrayRef({3, 3, 64, 64}));
  CHECK(batch.labels.sizes() == at::IntArrayRef({3}));
  REQUIRE(batch.captions.size() == 3);
  CHECK(batch.captions[1] == set.caption(5));
  CHECK(same_layout(parse_caption(batch.captions[1]), set.scene(5)));
  const Batch again = ScenesDataset(default_fashion_mnist_dir(), Split::Train, 100, 9).get({5});
  CHECK(at::equal(again.images[0], batch.images[1]));
  const ScenesDataset shifted(default_fashion_mnist_dir(), Split::Train, 100, 14);
  CHECK(at::equal(shifted.get({0}).images[0], batch.images[1]));  // scene i is seed + i
  CHECK(error_kind([&] { set.get({100}); }) == ErrorKind::Usage);
  CHECK(error_kind([] { ScenesDataset("/nonexistent", Split::Train, 4, 0); }) == ErrorKind::Input);
}

TEST_CASE("the scene evaluator: real scenes near the classifier's accuracy, wrong scenes wrong", "[scenes][eval]") {
  if (test::fashion_mnist_missing("the scene evaluator")) return;
  eval::FmnistClassifier classifier = eval::load_classifier(classifier_file(), at::kCPU);
  const FashionMnist test_set(default_fashion_mnist_dir(), Split::Test);
  const int64_t n = 200;
  const eval::SceneScores ceiling = eval::real_scene_ceiling(classifier, test_set, n, 0);
  std::vector<int64_t> first(2000);  // the classifier's own accuracy, on enough test images to compare
  for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
  const Batch plain = test_set.get(first);
  const double classifier_accuracy = [&] {
    c10::InferenceMode inference;
    return classifier->forward(plain.images).argmax(1).eq(plain.labels).to(at::kDouble).mean().item<double>();
  }();
  INFO(ceiling.to_json().dump(1) << "\nclassifier accuracy " << classifier_accuracy);
  CHECK(ceiling.items.total == 500);
  CHECK(ceiling.scenes.total == n);
  CHECK(ceiling.item_colour.accuracy() == 1.0);
  CHECK(ceiling.empty_cells.accuracy() == 1.0);
  CHECK(std::abs(ceiling.item_class.accuracy() - classifier_accuracy) < 0.03);
  CHECK(ceiling.held_out_items.total > 25);
  CHECK(ceiling.seen_items.total + ceiling.held_out_items.total == ceiling.items.total);
  for (int k = 0; k < 4; ++k) CHECK(ceiling.scenes_by_count[static_cast<size_t>(k)].total == n / 4);
  const nlohmann::json j = ceiling.to_json();
  CHECK(j.at("by_count").at("3").at("items").at("total") == 150);
  CHECK(j.at("held_out").at("items").at("total") == ceiling.held_out_items.total);

  const at::Tensor images = eval::real_scenes(test_set, n, 0);  // [n, 3, 64, 64]
  const std::vector<Scene> truth(benchmark_layouts().begin(), benchmark_layouts().begin() + n);
  std::vector<Scene> recoloured = truth, swapped, dropped;
  std::vector<int64_t> multi;
  for (Scene& s : recoloured)
    for (SceneItem& it : s.items) it.colour = (it.colour + 1) % kSceneColours;
  for (int64_t i = 0; i < n; ++i) {
    const Scene& s = truth[static_cast<size_t>(i)];
    if (s.items.size() < 2) continue;
    multi.push_back(i);
    Scene w = s;  // the items trade cells, one step round
    for (size_t k = 0; k < w.items.size(); ++k) w.items[k].cell = s.items[(k + 1) % s.items.size()].cell;
    swapped.push_back(w);
    Scene d = s;  // the image has an item the caption does not name
    d.items.pop_back();
    dropped.push_back(d);
  }
  const at::Tensor multi_images = images.index_select(0, at::tensor(multi, at::kLong));  // [m, 3, 64, 64]
  const eval::SceneScores wrong_colour = eval::score_scenes(classifier, images, recoloured);
  CHECK(wrong_colour.item_colour.right == 0);
  CHECK(wrong_colour.scenes.right == 0);
  const eval::SceneScores wrong_cells = eval::score_scenes(classifier, multi_images, swapped);
  CHECK(wrong_cells.scenes.accuracy() < 0.05);
  const eval::SceneScores extra_item = eval::score_scenes(classifier, multi_images, dropped);
  CHECK(extra_item.scenes.right == 0);
  CHECK(extra_item.empty_cells.total - extra_item.empty_cells.right == static_cast<int64_t>(multi.size()));
  CHECK(error_kind([&] { eval::score_scenes(classifier, images, dropped); }) == ErrorKind::Usage);
}

TEST_CASE("crop FID: real scenes sit at the floor, noise far above it", "[scenes][eval]") {
  if (test::fashion_mnist_missing("crop FID")) return;
  eval::FmnistClassifier classifier = eval::load_classifier(classifier_file(), at::kCPU);
  const FashionMnist test_set(default_fashion_mnist_dir(), Split::Test);
  const FashionMnist train_set(default_fashion_mnist_dir(), Split::Train);
  const int64_t n = 200;
  const std::vector<Scene> layouts(benchmark_layouts().begin(), benchmark_layouts().begin() + n);
  const at::Tensor real = eval::real_scenes(test_set, n, 1);  // [n, 3, 64, 64]
  const eval::CropFid fid = eval::crop_fid(classifier, real, layouts, test_set, train_set, 2);
  at::manual_seed(0);
  const at::Tensor noise = at::rand({n, 3, 64, 64}) * 2 - 1;
  const eval::CropFid bad = eval::crop_fid(classifier, noise, layouts, test_set, train_set, 2);
  INFO("real " << fid.fid << " floor " << fid.real_floor << " noise " << bad.fid);
  CHECK(fid.fid < 2 * fid.real_floor + 1);
  CHECK(bad.fid > 10 * fid.real_floor);
  CHECK(bad.real_floor == fid.real_floor);
  CHECK(eval::item_crops(real, layouts).size(0) == 500);
}

TEST_CASE("ditgen scenes writes a contact sheet and single PNGs and prints the captions", "[scenes][cli]") {
  if (test::fashion_mnist_missing("ditgen scenes")) return;
  test::TempDir dir;
  const test::CliResult r = test::run_cli({"scenes", "-n", "5", "--seed", "3", "--grid", "sheet.png", "-o", "one",
                                           "--canonical"},
                                          dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> lines;
  for (size_t at = 0, next; at < r.out.size(); at = next + 1) {
    next = r.out.find('\n', at);
    lines.push_back(r.out.substr(at, next - at));
  }
  REQUIRE(lines.size() == 5);
  for (const std::string& line : lines) CHECK_NOTHROW(parse_caption(line));
  const io::Image sheet = io::read_png(dir / "sheet.png");
  CHECK(sheet.width == 3 * 65 - 1);  // ceil(sqrt 5) columns with 1-pixel gaps
  CHECK(sheet.height == 2 * 65 - 1);
  CHECK(sheet.channels == 3);
  const io::Image single = io::read_png(dir / "one/scene-4.png");
  CHECK(single.width == 64);
  CHECK(io::read_png_text(dir / "one/scene-4.png").at(0).text == lines[4]);

  const auto before = dir.listing();
  const std::vector<std::vector<std::string>> bad_args{
      {"scenes", "-n", "0"}, {"scenes", "--grid", "sheet.jpg"}, {"scenes", "-n", "many"}};
  for (const std::vector<std::string>& args : bad_args) {
    const test::CliResult bad = test::run_cli(args, dir.path());
    INFO(bad.err);
    CHECK(bad.exit_code == 2);
    CHECK(bad.out.empty());
  }
  CHECK(dir.listing() == before);
  CHECK(test::run_cli({"scenes", "--data", "/nonexistent"}, dir.path()).exit_code == 3);
  CHECK(test::contains(test::run_cli({"scenes", "--help"}, dir.path()).out, "--held-out"));
}
