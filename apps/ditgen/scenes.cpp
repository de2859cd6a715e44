// `ditgen scenes`: shows FashionScenes training data: renders scenes, prints their captions, writes a contact
// sheet and/or one PNG per scene (with its caption in the file). With --frames, Moving FashionScenes clips
// instead: the contact sheet has a clip a row, and each clip's PNG is its frames in a strip.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "ditgen/core/log.h"
#include "ditgen/data/moving_scenes.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/scenes.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/pipeline/outputs.h"

namespace ditgen::cli {

namespace {

constexpr int64_t kMaxScenes = 4096;  // 200 MB of images: a look at the data, not a data set
constexpr int64_t kMaxClips = 256;    // as many frames as 4096 scenes at 16 frames a clip

struct ScenesCliOptions {
  int64_t count = 16;
  uint64_t seed = 0;
  std::string grid, folder, data_dir;
  bool held_out = false;
  bool canonical = false;
  int frames = 0;  // 0: still scenes
  double still_share = data::kDefaultStillShare;
};

// What the run shows: images [N, 3, 64, 64] or clips [N, F, 3, 64, 64], with their captions.
struct Shown {
  at::Tensor images;
  std::vector<std::string> captions;
};

Shown still_scenes(const ScenesCliOptions& o, const std::filesystem::path& dir, const std::vector<int64_t>& indices) {
  const data::ScenesDataset scenes(dir, data::Split::Train, o.count, o.seed,
                                   o.held_out ? data::Pairs::All : data::Pairs::Seen);
  data::Batch batch = scenes.get(indices);  // images [N, 3, 64, 64]
  if (o.canonical)
    for (int64_t i : indices) batch.captions[static_cast<size_t>(i)] = data::canonical_caption(scenes.scene(i));
  return {batch.images, batch.captions};
}

Shown moving_clips(const ScenesCliOptions& o, const std::filesystem::path& dir, const std::vector<int64_t>& indices) {
  const data::MovingScenesDataset clips(dir, data::Split::Train, o.count, o.seed,
                                        {o.frames, o.still_share, o.held_out ? data::Pairs::All : data::Pairs::Seen});
  data::Batch batch = clips.get(indices);  // clips [N, 3, F, 64, 64]
  if (o.canonical)
    for (int64_t i : indices) batch.captions[static_cast<size_t>(i)] = clips.canonical(i);
  return {batch.images.transpose(1, 2), batch.captions};  // [N, F, 3, 64, 64]
}

// A clip [F, 3, 64, 64] or an image [3, 64, 64] as one PNG: the frames side by side.
io::Image strip(const at::Tensor& shown) {
  return shown.dim() == 4 ? tile_images(shown, shown.size(0)) : to_image(shown);
}

int run_scenes(const ScenesCliOptions& o) {
  const bool moving = o.frames > 0;
  const int64_t most = moving ? kMaxClips : kMaxScenes;
  if (o.count < 1 || o.count > most)
    throw Error(ErrorKind::Usage, "-n must be in 1.." + std::to_string(most) + (moving ? " with --frames" : "") +
                                      ", not " + std::to_string(o.count));
  if (o.frames != 0) data::check_frames(o.frames);
  const std::string name = moving ? "clip" : "scene";
  std::vector<std::filesystem::path> singles;
  if (!o.folder.empty())
    for (int64_t i = 0; i < o.count; ++i)
      singles.push_back(std::filesystem::path(o.folder) / (name + "-" + std::to_string(i) + ".png"));
  std::vector<RunFile> outputs;
  if (!o.grid.empty()) {
    require_extension(o.grid, ".png", "--grid");
    outputs.push_back({o.grid, "--grid"});
  }
  for (size_t i = 0; i < singles.size(); ++i) outputs.push_back({singles[i], name + " " + std::to_string(i)});
  check_run_files(outputs, {});
  if (!o.grid.empty()) io::AtomicFile probe(o.grid);  // an unwritable place fails before the work

  const std::filesystem::path dir = o.data_dir.empty() ? data::default_fashion_mnist_dir()
                                                       : std::filesystem::path(o.data_dir);
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < o.count; ++i) indices.push_back(i);
  const Shown shown = moving ? moving_clips(o, dir, indices) : still_scenes(o, dir, indices);
  std::error_code ec;  // the folder only once the data is there: a failed run leaves nothing behind
  if (!o.folder.empty() && !std::filesystem::is_directory(o.folder, ec) &&
      !std::filesystem::create_directories(o.folder, ec))
    throw Error(ErrorKind::Output, "-o: cannot make the folder " + o.folder + ": " + ec.message());
  for (const std::string& caption : shown.captions) std::printf("%s\n", caption.c_str());
  for (size_t i = 0; i < singles.size(); ++i)
    io::write_png(singles[i], strip(shown.images[static_cast<int64_t>(i)]), {{"Description", shown.captions[i]}});
  if (!singles.empty()) log::info("wrote " + std::to_string(singles.size()) + " " + name + "(s) to " + o.folder);
  if (!o.grid.empty()) {
    // Clips a row each, frame by frame; scenes in a near-square grid.
    io::write_png(o.grid, moving ? tile_images(shown.images.flatten(0, 1), o.frames) : contact_sheet(shown.images));
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
  app->add_option("-n,--count", o->count, "Scenes to make (1..4096, clips 1..256); scene i is drawn from seed + i")
      ->capture_default_str();
  app->add_option("-s,--seed", o->seed, "Seed of the first scene")->capture_default_str();
  app->add_option("--grid", o->grid, "Write a contact sheet of the scenes to this PNG");
  app->add_option("-o,--output", o->folder,
                  "Write each scene to FOLDER/scene-INDEX.png, its caption in the PNG's Description text");
  app->add_flag("--held-out", o->held_out, "Allow the colour-item pairs held out of training (evaluation scenes)");
  app->add_flag("--canonical", o->canonical, "Print canonical captions instead of the training paraphrases");
  CLI::Option* frames = app->add_option(
      "--frames", o->frames,
      "Show Moving FashionScenes clips of this many frames (1..19; 16 is the default of the video data) "
      "instead of still scenes: the contact sheet has a clip a row, -o writes each clip as a strip");
  app->add_option("--still-share", o->still_share,
                  "With --frames: the share of examples that are still scenes held for every frame (joint "
                  "image-video training)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->needs(frames);
  app->add_option("--data", o->data_dir, "Fashion-MNIST folder (default: the Debian package's)");
  return {app, [o] { return run_scenes(*o); }};
}

}  // namespace ditgen::cli
