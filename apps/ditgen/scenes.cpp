// `ditgen scenes`: shows FashionScenes training data: renders scenes, prints their captions, writes a contact
// sheet and/or one PNG per scene (with its caption in the file).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "ditgen/core/log.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/scenes.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/pipeline/outputs.h"

namespace ditgen::cli {

namespace {

constexpr int64_t kMaxScenes = 4096;  // 200 MB of images: a look at the data, not a data set

struct ScenesCliOptions {
  int64_t count = 16;
  uint64_t seed = 0;
  std::string grid, folder, data_dir;
  bool held_out = false;
  bool canonical = false;
};

int run_scenes(const ScenesCliOptions& o) {
  if (o.count < 1 || o.count > kMaxScenes)
    throw Error(ErrorKind::Usage, "-n must be in 1.." + std::to_string(kMaxScenes) + ", not " + std::to_string(o.count));
  std::vector<std::filesystem::path> singles;
  if (!o.folder.empty())
    for (int64_t i = 0; i < o.count; ++i)
      singles.push_back(std::filesystem::path(o.folder) / ("scene-" + std::to_string(i) + ".png"));
  std::vector<RunFile> outputs;
  if (!o.grid.empty()) {
    require_extension(o.grid, ".png", "--grid");
    outputs.push_back({o.grid, "--grid"});
  }
  for (size_t i = 0; i < singles.size(); ++i) outputs.push_back({singles[i], "scene " + std::to_string(i)});
  check_run_files(outputs, {});
  if (!o.grid.empty()) io::AtomicFile probe(o.grid);  // an unwritable place fails before the work

  const std::filesystem::path dir = o.data_dir.empty() ? data::default_fashion_mnist_dir()
                                                       : std::filesystem::path(o.data_dir);
  const data::ScenesDataset scenes(dir, data::Split::Train, o.count, o.seed,
                                   o.held_out ? data::Pairs::All : data::Pairs::Seen);
  std::error_code ec;  // the folder only once the data is there: a failed run leaves nothing behind
  if (!o.folder.empty() && !std::filesystem::is_directory(o.folder, ec) &&
      !std::filesystem::create_directories(o.folder, ec))
    throw Error(ErrorKind::Output, "-o: cannot make the folder " + o.folder + ": " + ec.message());
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < o.count; ++i) indices.push_back(i);
  const data::Batch batch = scenes.get(indices);  // images [N, 3, 64, 64]
  std::vector<std::string> captions = batch.captions;
  if (o.canonical)
    for (int64_t i = 0; i < o.count; ++i) captions[static_cast<size_t>(i)] = data::canonical_caption(scenes.scene(i));
  for (const std::string& caption : captions) std::printf("%s\n", caption.c_str());
  for (size_t i = 0; i < singles.size(); ++i)
    io::write_png(singles[i], to_image(batch.images[static_cast<int64_t>(i)]), {{"Description", captions[i]}});
  if (!singles.empty()) log::info("wrote " + std::to_string(singles.size()) + " scene(s) to " + o.folder);
  if (!o.grid.empty()) {
    io::write_png(o.grid, contact_sheet(batch.images));
    log::info("wrote the contact sheet " + o.grid);
  }
  return 0;
}

}  // namespace

Command add_scenes_command(CLI::App& root) {
  auto o = std::make_shared<ScenesCliOptions>();
  CLI::App* app = root.add_subcommand(
      "scenes", "Show FashionScenes training data: render scenes of coloured Fashion-MNIST items and print their "
                "captions (docs/SCENES.md)");
  app->add_option("-n,--count", o->count, "Scenes to make (1..4096); scene i is drawn from seed + i")
      ->capture_default_str();
  app->add_option("-s,--seed", o->seed, "Seed of the first scene")->capture_default_str();
  app->add_option("--grid", o->grid, "Write a contact sheet of the scenes to this PNG");
  app->add_option("-o,--output", o->folder,
                  "Write each scene to FOLDER/scene-INDEX.png, its caption in the PNG's Description text");
  app->add_flag("--held-out", o->held_out, "Allow the colour-item pairs held out of training (evaluation scenes)");
  app->add_flag("--canonical", o->canonical, "Print canonical captions instead of the training paraphrases");
  app->add_option("--data", o->data_dir, "Fashion-MNIST folder (default: the Debian package's)");
  return {app, [o] { return run_scenes(*o); }};
}

}  // namespace ditgen::cli
