#include "ditgen/eval/subject_benchmark.h"

#include <algorithm>
#include <map>

#include "ditgen/core/error.h"
#include "ditgen/data/scenes.h"
#include "ditgen/data/subject_scenes.h"
#include "ditgen/eval/scene_benchmark.h"
#include "ditgen/eval/scene_eval.h"

namespace ditgen::eval {

namespace {

void check_class(int cls) {
  if (cls < 0 || cls >= data::kSceneClasses) throw Error(ErrorKind::Usage, "a subject's class must be in 0..9");
}

data::Scene one_item(int cls, int colour, data::Cell cell) { return {{data::SceneItem{cls, colour, cell}}}; }

// Unit-length classifier features of grey crops [M, 1, 32, 32] in [-1, 1]: [M, 256].
at::Tensor unit_features(FmnistClassifier& classifier, const at::Tensor& crops) {
  const at::Tensor f = in_classifier_batches(classifier, crops, [&](const at::Tensor& x) {
    return classifier->features(x);  // [b, 256]
  });
  return f / f.norm(2, 1, true).clamp_min(1e-12);  // [M, 256]
}

// Grey item images [M, 28, 28] in [0, 1] as the classifier sees crops: [M, 1, 32, 32] in [-1, 1], centred.
at::Tensor as_crops(const at::Tensor& greys) {
  at::Tensor crops = at::full({greys.size(0), 1, data::kCellSize, data::kCellSize}, -1.0f);
  const int64_t pad = (data::kCellSize - data::kItemSize) / 2;
  crops.select(1, 0).narrow(1, pad, data::kItemSize).narrow(2, pad, data::kItemSize).copy_(greys.cpu() * 2 - 1);
  return crops;
}

// Subject and prompt fidelity of images [N, 3, 64, 64] made for asked[i], overall and by prompt kind.
nlohmann::json fidelity(FmnistClassifier& classifier, const at::Tensor& images, const std::vector<SubjectPrompt>& asked,
                        const at::Tensor& subject_features) {
  std::vector<data::Scene> layouts;
  std::vector<int64_t> subject_rows;  // each image's subject crop among item_crops' rows
  int64_t row = 0;
  for (const SubjectPrompt& p : asked) {
    layouts.push_back(p.layout);
    subject_rows.push_back(row + static_cast<int64_t>(p.subject));
    row += static_cast<int64_t>(p.layout.items.size());
  }
  const at::Tensor crops = item_crops(images, layouts).index_select(0, at::tensor(subject_rows));  // [N, 1, 32, 32]
  const at::Tensor cosine = unit_features(classifier, crops).matmul(subject_features.t()).squeeze(1);  // [N]
  auto figures = [&](const std::vector<int64_t>& members) {
    const at::Tensor index = at::tensor(members);
    std::vector<data::Scene> some;
    for (int64_t i : members) some.push_back(layouts[static_cast<size_t>(i)]);
    const SceneScores scores = score_scenes(classifier, images.index_select(0, index), some);
    return nlohmann::json{{"subject_fidelity", cosine.index_select(0, index).mean().item<double>()},
                          {"prompt_fidelity", scores.items.accuracy()},
                          {"images", static_cast<int64_t>(members.size())}};
  };
  std::map<std::string, std::vector<int64_t>> by_kind;
  std::vector<int64_t> all;
  for (size_t i = 0; i < asked.size(); ++i) {
    by_kind[asked[i].kind].push_back(static_cast<int64_t>(i));
    all.push_back(static_cast<int64_t>(i));
  }
  nlohmann::json j = figures(all);
  for (const auto& [kind, members] : by_kind) j["by_kind"][kind] = figures(members);
  return j;
}

}  // namespace

std::vector<SubjectPrompt> subject_prompts(int cls, const std::string& word) {
  check_class(cls);
  using data::Cell;
  std::vector<SubjectPrompt> prompts;
  auto add = [&](const std::string& kind, const data::Scene& layout, size_t subject) {
    prompts.push_back({kind, data::subject_caption(layout, word, subject), layout, subject});
  };
  for (int colour = 0; colour < data::kSceneColours; ++colour) add("colour", one_item(cls, colour, Cell::Center), 0);
  int seen = 0;
  while (data::is_held_out(seen, cls)) ++seen;
  for (const Cell cell : {Cell::TopLeft, Cell::TopRight, Cell::BottomLeft, Cell::BottomRight})  // centre: above
    add("place", one_item(cls, seen, cell), 0);
  const int other_cls = (cls + 5) % data::kSceneClasses;
  int other_colour = (seen + 3) % data::kSceneColours;
  while (data::is_held_out(other_colour, other_cls) || other_colour == seen)
    other_colour = (other_colour + 1) % data::kSceneColours;
  for (int corner = 0; corner < data::kQuadrants; ++corner) {
    const auto mine = static_cast<Cell>(corner), theirs = static_cast<Cell>(data::kQuadrants - 1 - corner);
    data::Scene scene{{data::SceneItem{cls, seen, mine}, data::SceneItem{other_cls, other_colour, theirs}}};
    const bool subject_first = corner < data::kQuadrants / 2;  // items in cell order
    if (!subject_first) std::swap(scene.items[0], scene.items[1]);
    add("company", scene, subject_first ? 0 : 1);
  }
  return prompts;
}

at::Tensor subject_scenes(const std::vector<SubjectPrompt>& prompts, const data::FashionMnist& test,
                          int64_t subject_source) {
  const at::Tensor labels = test.all_labels();
  std::vector<data::Scene> scenes;
  for (const SubjectPrompt& p : prompts) {
    data::Scene scene = p.layout;
    for (size_t i = 0; i < scene.items.size(); ++i)
      scene.items[i].source_index = i == p.subject ? subject_source
                                                   : (labels == scene.items[i].cls).nonzero()[0][0].item<int64_t>();
    scenes.push_back(scene);
  }
  return data::render(scenes, test);  // [P, 3, 64, 64]
}

nlohmann::json score_subject(FmnistClassifier& classifier, const at::Tensor& images,
                             const std::vector<SubjectPrompt>& asked, const at::Tensor& subject, int cls,
                             int64_t subject_index, const data::FashionMnist& test) {
  check_class(cls);
  if (subject.sizes() != at::IntArrayRef({data::kItemSize, data::kItemSize}))
    throw Error(ErrorKind::Usage, "a subject image is 28x28");
  if (images.dim() != 4 || images.size(0) != static_cast<int64_t>(asked.size()) || asked.empty())
    throw Error(ErrorKind::Usage, "subject scoring needs one prompt for each image");
  const at::Tensor subject_features = unit_features(classifier, as_crops(subject.unsqueeze(0)));  // [1, 256]

  // What an ordinary item of the class reaches: the test split's others of the class.
  const at::Tensor labels = test.all_labels();
  at::Tensor same = (labels == cls);
  if (subject_index >= 0 && subject_index < labels.size(0)) same[subject_index] = false;
  const at::Tensor others = same.nonzero().squeeze(1);  // [K]
  const at::Tensor other_greys =
      data::item_greys(test, std::vector<int64_t>(others.data_ptr<int64_t>(), others.data_ptr<int64_t>() + others.numel()));
  const double baseline =
      unit_features(classifier, as_crops(other_greys)).matmul(subject_features.t()).mean().item<double>();

  // The ceiling: each prompt's real scene with the subject itself in it.
  std::vector<SubjectPrompt> prompts;  // each prompt once, in first-asked order
  for (const SubjectPrompt& p : asked)
    if (std::none_of(prompts.begin(), prompts.end(), [&](const SubjectPrompt& q) { return q.text == p.text; }))
      prompts.push_back(p);
  nlohmann::json j = fidelity(classifier, images, asked, subject_features);
  j["class_baseline"] = baseline;
  j["ceiling"] = fidelity(classifier, subject_scenes(prompts, test, subject_index), prompts, subject_features);
  j["images"] = images.size(0);
  j["prompts"] = static_cast<int64_t>(prompts.size());
  return j;
}

EvalReport evaluate_subject(Generator& generator, const EvalOptions& o, const EvalProgress& progress) {
  check_text_model(generator.info());
  const std::vector<std::string>& vocabulary = generator.info().config.text.vocabulary;
  if (std::find(vocabulary.begin(), vocabulary.end(), o.subject_word) == vocabulary.end())
    throw Error(ErrorKind::Usage, "the model does not know the subject word '" + o.subject_word +
                                      "': evaluate a model fine-tuned on a subject (docs/INTLORA.md)");
  const std::filesystem::path dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : o.data_dir;
  data::FashionMnist test(dir, data::Split::Test);
  if (o.subject_index < 0 || o.subject_index >= test.size())
    throw Error(ErrorKind::Usage, "the subject index must be in 0.." + std::to_string(test.size() - 1));
  const int cls = static_cast<int>(test.all_labels()[o.subject_index].item<int64_t>());
  const std::vector<SubjectPrompt> prompts = subject_prompts(cls, o.subject_word);
  std::vector<std::string> texts;
  for (const SubjectPrompt& p : prompts) texts.push_back(p.text);
  PromptBenchmarkRun run = run_prompt_benchmark(generator, o, texts, progress);
  const nlohmann::json scores = features_stage(progress, [&] {
    return score_subject(run.classifier, run.generated.images, cycled(prompts, o.num_samples),
                         data::item_greys(run.test_set, {o.subject_index})[0], cls, o.subject_index, run.test_set);
  });
  EvalReport report;
  report.scenes = scores;
  report.scenes["subject"] = {{"index", o.subject_index}, {"word", o.subject_word}, {"class", cls}};
  describe_run(report, generator, run.generated, o);
  return report;
}

}  // namespace ditgen::eval
