// Subject-driven fine-tuning data: the subject's renderings (its own test-split image, the rare word in the
// caption, every cell before a repeat, seen colours only), the prior-preservation scenes (its class from the
// train split, captions without the word, at the asked share), determinism and every refused setting.
#include <map>
#include <set>

#include "catch.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/subject_scenes.h"
#include "ditgen/eval/subject_benchmark.h"
#include "helpers.h"

using namespace ditgen;
using namespace ditgen::data;
using ditgen::test::contains;
using ditgen::test::error_kind;

TEST_CASE("subject renderings bind the rare word to the subject's own image, and prior scenes keep its class",
          "[subject]") {
  if (test::fashion_mnist_missing("subject scenes")) return;
  SubjectOptions o;
  o.subject = 17;
  o.word = "zq";
  o.renderings = 6;
  o.prior_share = 0.5;
  o.seed = 3;
  const SubjectScenesDataset set(default_fashion_mnist_dir(), 200, o);
  const FashionMnist test_split(default_fashion_mnist_dir(), Split::Test, kItemSize);
  CHECK(set.subject_class() == test_split.get({17}).labels[0].item<int64_t>());
  CHECK(at::equal(set.subject_image(), item_greys(test_split, {17})[0]));

  // Five renderings cover the five cells before any repeats; colours are seen pairs with the class.
  std::set<Cell> cells;
  for (size_t k = 0; k < 5; ++k) cells.insert(set.renderings()[k].items.front().cell);
  CHECK(cells.size() == 5);
  for (const Scene& s : set.renderings()) CHECK_FALSE(is_held_out(s.items.front().colour, set.subject_class()));

  int priors = 0;
  std::vector<int64_t> all;
  for (int64_t i = 0; i < 200; ++i) all.push_back(i);
  const Batch batch = set.get(all);
  REQUIRE(batch.images.sizes() == at::IntArrayRef({200, 3, 64, 64}));
  const std::string class_name = class_word(set.subject_class());
  for (int64_t i = 0; i < 200; ++i) {
    const std::string& caption = batch.captions[static_cast<size_t>(i)];
    CAPTURE(i, caption);
    if (set.is_prior(i)) {
      ++priors;
      CHECK_FALSE(contains(caption, "zq"));
      const Scene parsed = parse_caption(caption);  // an ordinary scene caption of one item of the class
      REQUIRE(parsed.items.size() == 1);
      CHECK(parsed.items.front().cls == set.subject_class());
    } else {
      const Scene& rendering = set.renderings()[static_cast<size_t>(i % 6)];
      CHECK(caption == subject_caption(rendering, "zq"));
      CHECK(contains(caption, "zq " + class_name));
      // The image is the subject's rendering: the test-split image itself.
      CHECK(at::equal(batch.images[i], render(rendering, test_split)));
    }
  }
  CHECK(priors > 70);
  CHECK(priors < 130);
  CHECK(at::equal(SubjectScenesDataset(default_fashion_mnist_dir(), 200, o).get({4, 9}).images,
                  set.get({4, 9}).images));
  CHECK(subject_caption(Scene{{SceneItem{8, 0, Cell::Center}}}, "zq") == "a red zq bag in the center");
}

TEST_CASE("subject settings are refused before any data is read", "[subject][errors]") {
  SubjectOptions ok;
  CHECK_NOTHROW(check_subject_options(ok));
  for (const char* word : {"", "ZQ", "z q", "bag", "red", "moving", "abcdefghijklmnopq"}) {
    SubjectOptions o;
    o.word = word;
    CAPTURE(word);
    CHECK(error_kind([&] { check_subject_options(o); }) == ErrorKind::Usage);
  }
  SubjectOptions none, many, share;
  none.renderings = 0;
  many.renderings = 17;
  share.prior_share = 1.0;
  for (const SubjectOptions& o : {none, many, share}) CHECK(error_kind([&] { check_subject_options(o); }) == ErrorKind::Usage);
  CHECK(error_kind([] { subject_caption(Scene{}, "zq"); }) == ErrorKind::Usage);
  if (test::fashion_mnist_missing("subject scenes", test::Skipping::Rest)) return;
  SubjectOptions outside;
  outside.subject = 10000;
  CHECK(error_kind([&] { SubjectScenesDataset(default_fashion_mnist_dir(), 10, outside); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { SubjectScenesDataset(default_fashion_mnist_dir(), 0, ok); }) == ErrorKind::Usage);
}

TEST_CASE("subject prompts ask for the subject in every colour, place and company, named as captions name items",
          "[subject][eval]") {
  const std::vector<eval::SubjectPrompt> prompts = eval::subject_prompts(8, "zq");
  REQUIRE(prompts.size() == 16);
  std::map<std::string, int> kinds;
  std::set<std::string> texts;
  for (const eval::SubjectPrompt& p : prompts) {
    INFO(p.text);
    kinds[p.kind] += 1;
    texts.insert(p.text);
    REQUIRE(p.subject < p.layout.items.size());
    CHECK(p.layout.items[p.subject].cls == 8);
    // The word sits before the subject's class word; without it the text is the layout's canonical caption.
    std::string plain = p.text;
    plain.erase(plain.find(" zq"), 3);
    CHECK(plain == canonical_caption(p.layout));
    CHECK(p.text.find(" zq bag") != std::string::npos);
  }
  CHECK(kinds == std::map<std::string, int>{{"colour", 8}, {"place", 4}, {"company", 4}});
  CHECK(texts.size() == 16);
  CHECK(prompts[0].text == "a red zq bag in the center");
  CHECK(prompts[15].text == "a green dress in the top left and a red zq bag in the bottom right");
  CHECK(error_kind([] { eval::subject_prompts(10, "zq"); }) == ErrorKind::Usage);
}

TEST_CASE("subject fidelity: the subject itself scores above its class, prompt fidelity reads every named item",
          "[subject][eval]") {
  if (test::fashion_mnist_missing("subject scoring")) return;
  eval::FmnistClassifier classifier =
      eval::load_classifier(test::shipped_model("fmnist-classifier.safetensors"), at::kCPU);
  const FashionMnist test_set(default_fashion_mnist_dir(), Split::Test);
  const int64_t subject = 17;
  const int cls = static_cast<int>(test_set.all_labels()[subject].item<int64_t>());
  const std::vector<eval::SubjectPrompt> prompts = eval::subject_prompts(cls, "zq");
  // "Generated" images: the prompts' scenes drawn with the subject, or with another item of its class.
  auto drawn = [&](int64_t source) { return eval::subject_scenes(prompts, test_set, source); };  // [16, 3, 64, 64]
  const at::Tensor subject_image = item_greys(test_set, {subject})[0];
  const nlohmann::json itself = eval::score_subject(classifier, drawn(subject), prompts, subject_image, cls, subject,
                                                    test_set);
  int64_t other = 0;
  while (other == subject || test_set.all_labels()[other].item<int64_t>() != cls) ++other;
  const nlohmann::json another = eval::score_subject(classifier, drawn(other), prompts, subject_image, cls, subject,
                                                     test_set);
  INFO(itself.dump() << "\n" << another.dump());
  // Real scenes of the subject are the ceiling: the same figures.
  CHECK(itself["subject_fidelity"] == itself["ceiling"]["subject_fidelity"]);
  CHECK(itself["prompt_fidelity"] == itself["ceiling"]["prompt_fidelity"]);
  CHECK(itself["subject_fidelity"].get<double>() > 0.9);
  CHECK(itself["subject_fidelity"].get<double>() > itself["class_baseline"].get<double>());
  CHECK(another["subject_fidelity"].get<double>() < itself["subject_fidelity"].get<double>());
  CHECK(itself["prompt_fidelity"].get<double>() >= 0.8);
  CHECK(itself["by_kind"]["company"]["images"] == 4);
  // Black images name nothing.
  const nlohmann::json black = eval::score_subject(classifier, at::full({16, 3, 64, 64}, -1.0f), prompts,
                                                   subject_image, cls, subject, test_set);
  CHECK(black["prompt_fidelity"] == 0.0);
  CHECK(error_kind([&] {
    eval::score_subject(classifier, drawn(subject).narrow(0, 0, 3), prompts, subject_image, cls, subject, test_set);
  }) == ErrorKind::Usage);
  CHECK(error_kind([&] {
    eval::score_subject(classifier, drawn(subject), prompts, subject_image.narrow(0, 0, 20), cls, subject, test_set);
  }) == ErrorKind::Usage);
}
