// Subject-driven fine-tuning data: the subject's renderings (its own test-split image, the rare word in the
// caption, every cell before a repeat, seen colours only), the prior-preservation scenes (its class from the
// train split, captions without the word, at the asked share), determinism and every refused setting.
#include <set>

#include "catch.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/subject_scenes.h"
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
