// Subject-driven fine-tuning data: DreamBooth's setting (Ruiz et al. 2023; the IntLoRA paper's adaptation task)
// on FashionScenes (docs/INTLORA.md). The subject is one particular Fashion-MNIST image of the test split, so
// no model trained here has seen it, bound to a rare word placed before its class word:
// "a red zq bag in the top left". Training examples are a few fixed renderings of the subject alone, and, for
// prior preservation, ordinary one-item scenes of its class from the train split whose captions name the class
// alone, so the model keeps what "bag" means while it learns what "zq bag" is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/data/dataset.h"
#include "ditgen/data/fashion_mnist.h"
#include "ditgen/data/scene_grammar.h"
#include "ditgen/data/scenes.h"

namespace ditgen::data {

struct SubjectOptions {
  int64_t subject = 0;       // index of the subject's image in the test split
  std::string word = "zq";   // 1 to 16 lowercase letters, no word captions already use
  int renderings = 6;        // the subject's fixed scenes, 1..16 (DreamBooth uses 4 to 8 photos)
  double prior_share = 0.5;  // share of examples that are prior-preservation scenes, in [0, 1)
  uint64_t seed = 0;         // draws the renderings' colours and cells and the prior scenes
};

// Error(Usage) naming the setting for a word that is not 1..16 lowercase letters or that captions already use
// (a colour, class, position or grammar word), renderings outside 1..16, or prior_share outside [0, 1).
void check_subject_options(const SubjectOptions& options);

// The canonical caption of `scene` with `word` before the class word of its item `subject` ("a red zq bag in the
// top left and a blue coat in the bottom right"). Error(Usage) for an empty scene or `subject` outside it.
std::string subject_caption(const Scene& scene, const std::string& word, size_t subject = 0);

// The subject's renderings: one item of class `cls` alone, in a colour of a seen pair and a cell (the centre
// included) drawn from `seed`; rendering k's cell cycles through all five before any repeats. No source set.
std::vector<Scene> subject_layouts(int cls, int count, uint64_t seed);

class SubjectScenesDataset : public SceneDataset {
 public:
  // Loads both Fashion-MNIST splits from `dir` (Error(Input) when missing); Error(Usage) for size < 1, bad
  // options, or a subject index outside the test split.
  SubjectScenesDataset(const std::filesystem::path& dir, int64_t size, const SubjectOptions& options);

  // Images [B, 3, 64, 64], labels [B] (zeros) and captions; Error(Usage) for an index outside 0..size()-1.
  Batch get(const std::vector<int64_t>& indices) const override;

  // Whether example `index` is a prior-preservation scene (else a rendering of the subject).
  bool is_prior(int64_t index) const;
  int subject_class() const { return subject_class_; }
  // The subject's grey image, [28, 28] float32 in [0, 1]: what subject fidelity compares generations with.
  const at::Tensor& subject_image() const { return subject_image_; }
  const std::vector<Scene>& renderings() const { return renderings_; }

 private:
  FashionMnist train_, test_;
  ItemPool train_pool_;
  SubjectOptions options_;
  int subject_class_ = 0;
  at::Tensor subject_image_;
  std::vector<Scene> renderings_;  // sources index the test split
};

}  // namespace ditgen::data
