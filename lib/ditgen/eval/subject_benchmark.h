// Subject-driven generation's figures (DreamBooth's, the IntLoRA paper's adaptation task, on FashionScenes;
// docs/INTLORA.md): a model fine-tuned on one test-split item bound to a rare word is asked for that item in
// other colours, places and company. Subject fidelity is the cosine similarity of the Fashion-MNIST
// classifier's features between each generated subject crop and the subject itself (the role DINO plays in
// the paper); prompt fidelity is the scene scorer's item accuracy on those prompts (the role of CLIP-T).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/data/fashion_mnist.h"
#include "ditgen/data/scene_grammar.h"
#include "ditgen/eval/classifier.h"
#include "ditgen/eval/evaluate.h"

namespace ditgen::eval {

struct SubjectPrompt {
  std::string kind;     // "colour", "place" or "company"
  std::string text;     // "a red zq bag in the center"
  data::Scene layout;   // what the text names
  size_t subject = 0;   // the subject's item in layout.items
};

// The fixed prompts for a subject of class `cls` bound to `word` (16): the subject in the centre in each of the
// 8 colours; in each of the 4 corners in the first colour its class is seen in; and in each corner in that
// colour beside an item of class cls + 5 (mod 10), in another seen colour, in the opposite corner.
// Error(Usage) for a class outside 0..9.
std::vector<SubjectPrompt> subject_prompts(int cls, const std::string& word);

// The real scenes of `prompts` from `test` (the Fashion-MNIST test split): each subject item drawn from test
// image `subject_source`, each other item from the first test image of its class. [P, 3, 64, 64] in [-1, 1].
at::Tensor subject_scenes(const std::vector<SubjectPrompt>& prompts, const data::FashionMnist& test,
                          int64_t subject_source);

// Scores images [N, 3, 64, 64] in [-1, 1], image i made for asked[i], against `subject` (its grey image
// [28, 28] in [0, 1]; any device). Returns
//   "subject_fidelity": the mean cosine between the features of each image's subject crop and the subject's;
//   "class_baseline": the same mean for the test split's other items of the subject's class `cls`: what an
//     ordinary item of the class reaches (a model that learned the subject should exceed it);
//   "prompt_fidelity": the scene scorer's item accuracy (class, colour and place of every named item), and
//     "by_kind": subject fidelity and prompt fidelity for each prompt kind;
//   "ceiling": the same figures for the prompts' real scenes, the subject itself rendered in them;
//   "images", "prompts".
// Error(Usage) for a count or shape mismatch, a class outside 0..9 or a subject image that is not [28, 28].
nlohmann::json score_subject(FmnistClassifier& classifier, const at::Tensor& images,
                             const std::vector<SubjectPrompt>& asked, const at::Tensor& subject, int cls,
                             int64_t subject_index, const data::FashionMnist& test);

// Generates options.num_samples images, image i for subject_prompts(...)[i mod 16] of the test-split image
// options.subject_index bound to options.subject_word, and reports score_subject in EvalReport::scenes with
// "subject": {"index", "word", "class"} (fid and class_accuracy stay 0). Error(Usage) for a model that is not
// a 64x64 RGB text model, a word it does not know, or a subject index outside the test split.
EvalReport evaluate_subject(Generator& generator, const EvalOptions& options, const EvalProgress& progress = {});

}  // namespace ditgen::eval
